"""The product's loop on real photos with a model trained in the test: train a tiny Triplet
Network on some people's photos, calibrate its threshold on photos it never trained on (of those
people and of people it never saw), enrol some of the people, then identify photos of theirs
that neither training nor the gallery saw, and reject strangers the model never saw
(celeba-wild; skipped when ../shared/data is absent)."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.data.align import detect_and_align
from facemetric.data.detect import create_detector
from facemetric.data.image import load_image
from facemetric.evaluate.metrics import auc, calibrate_threshold
from facemetric.gallery.store import GalleryStore
from facemetric.models import Embedder, load_embedder
from facemetric.recognize.recognizer import Recognizer
from facemetric.train import TrainConfig, train

# People, in this order: trained on (the first KNOWN of them enrolled), only in calibration,
# strangers (never trained on, never enrolled).
TRAINED, KNOWN, CALIBRATION, STRANGERS = 16, 8, 7, 7
TRAIN, CALIBRATE, PROBE = 10, 3, 3  # photos per person, in this order
ENROL = 3  # of the TRAIN photos
DLIB_FORGET_MARGIN = 0.005  # AUC the dlib fine-tune may lose on people it never trained on


@pytest.fixture(scope="module")
def photos() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(photo, aligned crop) pairs of the first celeba-wild people with enough one-face photos."""
    root = shared_set("celeba-wild")
    detector = create_detector("retinaface", threads=1)
    need = TRAIN + CALIBRATE + PROBE
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        found = []
        for path in sorted(folder.iterdir()):
            image = load_image(path)
            faces = detect_and_align(image, detector, size=64)
            if len(faces) == 1:
                found.append((image, faces[0].crop))
            if len(found) == need:
                break
        if len(found) == need:
            out[folder.name] = found
        if len(out) == TRAINED + CALIBRATION + STRANGERS:
            return out
    pytest.fail(f"celeba-wild: too few people with {need} one-face photos")


def _train_on(
    photos: dict, names: list[str], crops: Path, out: Path, steps: int, **kw: object
) -> Path:
    """Train a tiny model (or, with ``init=``, fine-tune one) on NAMES' first TRAIN crops."""
    for name in names:
        (crops / name).mkdir(parents=True)
        for i, (_, crop) in enumerate(photos[name][:TRAIN]):
            Image.fromarray(crop).save(crops / name / f"{i}.png")
    config = TrainConfig(
        data=(str(crops),),
        out=str(out),
        backbone="tiny",
        dim=32,
        size=64,
        batch_p=len(names),
        batch_k=4,
        epochs=1,
        steps_per_epoch=steps,
        val_fraction=0.0,
        progress=False,
        tensorboard=False,
        precision="fp32",
        seed=0,
    )
    return train(replace(config, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model(photos: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on the first TRAINED people's first TRAIN crops only."""
    crops, run = tmp_path_factory.mktemp("crops"), tmp_path_factory.mktemp("run") / "tiny"
    return _train_on(photos, list(photos)[:TRAINED], crops, run, steps=400, lr=3e-3)


@pytest.mark.slow
def test_trained_model_identifies_unseen_photos_and_rejects_strangers(
    photos: dict, model: Path, tmp_path: Path
) -> None:
    names = list(photos)
    known = names[:KNOWN]
    calibration = names[KNOWN : TRAINED + CALIBRATION]
    strangers = names[TRAINED + CALIBRATION :]
    embedder = load_embedder(model, engine="torch")

    # Calibrate on photos the model never trained on and the gallery never holds, of trained
    # people and of people the model never saw (as `facemetric evaluate --calibrate` would).
    cal = [(n, crop) for n in calibration for _, crop in photos[n][TRAIN : TRAIN + CALIBRATE]]
    emb = embedder.embed(np.stack([c for _, c in cal]))
    pairs = list(combinations(range(len(cal)), 2))
    scores = np.array([float(emb[i] @ emb[j]) for i, j in pairs])
    labels = np.array([cal[i][0] == cal[j][0] for i, j in pairs])
    threshold = calibrate_threshold(scores, labels, target_far=0.03)["threshold"]

    recognizer = Recognizer(
        embedder, GalleryStore(tmp_path / "g.db"), create_detector("retinaface", threads=1)
    )
    for name in known:  # enrol from training photos: the user's reference faces
        recognizer.enroll(name, [img for img, _ in photos[name][:ENROL]])

    probes = TRAIN + CALIBRATE
    right = total = 0
    for name in known:
        for image, _ in photos[name][probes:]:
            (face,) = recognizer.recognize(image, threshold=threshold)
            right += face.is_match and face.identity == name
            total += 1
    rejected = seen = 0
    for name in strangers:
        for image, _ in photos[name][probes:]:
            (face,) = recognizer.recognize(image, threshold=threshold)
            assert face.identity in {None, *known}
            rejected += not face.is_match
            seen += 1
    # Chance would be 1 in 8 for the identity; a model that did not learn rejects all or none.
    assert right / total >= 0.5, f"identified {right} of {total} unseen photos of known people"
    assert rejected / seen >= 0.5, f"rejected {rejected} of {seen} photos of strangers"


def _pair_auc(embedder: Embedder, crops: list[tuple[str, np.ndarray]]) -> float:
    """Verification AUC over every pair of the crops (same person or not)."""
    emb = embedder.embed(np.stack([c for _, c in crops]))
    i, j = np.triu_indices(len(crops), k=1)
    names = np.array([n for n, _ in crops])
    return auc(np.einsum("nd,nd->n", emb[i], emb[j]), names[i] == names[j])


def _raw_embeddings(embedder: Embedder, crops: list[tuple[str, np.ndarray]]) -> Any:
    """The crops' raw (not normalised) embeddings, the space the dlib fine-tune trains in."""
    import torch

    from facemetric.models.inference import preprocess

    net = embedder.model  # type: ignore[attr-defined]
    with torch.no_grad():
        return net.features(
            torch.from_numpy(preprocess(np.stack([c for _, c in crops]), embedder.spec))
        )


def _triplet_loss(embedder: Embedder, crops: list[tuple[str, np.ndarray]], margin: float) -> float:
    """The mean triplet loss over EVERY (anchor, positive, negative) of the crops, on the raw
    embeddings (Euclidean distance, as `--loss triplet` fine-tunes the dlib model)."""
    import torch

    raw = _raw_embeddings(embedder, crops)
    d = torch.cdist(raw, raw)
    names = np.array([n for n, _ in crops])
    same = torch.from_numpy(names[:, None] == names[None, :])
    a, p, n = torch.nonzero(
        same[:, :, None] & ~same[:, None, :] & ~torch.eye(len(names), dtype=torch.bool)[:, :, None],
        as_tuple=True,
    )
    return float(torch.relu(d[a, p] - d[a, n] + margin).mean())


def _pair_loss(embedder: Embedder, crops: list[tuple[str, np.ndarray]], margin: float) -> float:
    """dlib's pair loss (the recipe's default) over every pair of the crops, raw embeddings."""
    import torch

    from facemetric.train.losses import PairThresholdLoss

    names = sorted({n for n, _ in crops})
    labels = torch.tensor([names.index(n) for n, _ in crops])
    return float(PairThresholdLoss(0.6, margin)(_raw_embeddings(embedder, crops), labels).loss)


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", [None, "triplet"])
def test_fine_tuning_dlib_learns_the_family_without_forgetting(
    photos: dict, tmp_path: Path, loss_name: str | None
) -> None:
    """`facemetric train CROPS` on a user's few people fine-tunes the pretrained network with its
    recipe (dlib's pair loss in its own space, the starting network as teacher), or with
    `--loss triplet` as a Triplet Network: the loss it trains falls on their photos, and
    verification of people it never trained on stays within DLIB_FORGET_MARGIN of AUC
    (measured, triplet: loss 0.0006 -> 0.0000, AUC 0.9947 -> 0.9950)."""
    names = list(photos)
    unseen = names[:TRAINED]  # people the fine-tune never sees
    family = names[TRAINED + CALIBRATION :]
    detector = create_detector("retinaface", threads=1)

    def chips(name: str, which: slice) -> list[tuple[str, np.ndarray]]:
        return [
            (name, detect_and_align(image, detector, 150, template="dlib")[0].crop)
            for image, _ in photos[name][which]
        ]

    crops = tmp_path / "family"
    for name in family:
        (crops / name).mkdir(parents=True)
        for i, (_, chip) in enumerate(chips(name, slice(0, TRAIN))):
            Image.fromarray(chip).save(crops / name / f"{i}.png")
    (crops / "prepare.json").write_text('{"template": "dlib", "size": 150}')
    trained_on = [c for n in family for c in chips(n, slice(0, TRAIN))]
    held_out = [c for n in unseen for c in chips(n, slice(TRAIN, None))]

    base = load_embedder("dlib", engine="torch")
    config = TrainConfig(
        data=(str(crops),),
        out=str(tmp_path / "tuned"),
        batch_p=len(family),
        batch_k=4,
        epochs=1,
        steps_per_epoch=60,
        val_fraction=0.0,
        progress=False,
        tensorboard=False,
        precision="fp32",
        loss=loss_name,
    )
    tuned = load_embedder(train(config) / "last.pt", engine="torch")
    margin = 0.04  # the recipe's
    measure = _triplet_loss if loss_name == "triplet" else _pair_loss
    loss = measure(base, trained_on, margin), measure(tuned, trained_on, margin)
    kept = _pair_auc(base, held_out), _pair_auc(tuned, held_out)
    assert loss[1] < loss[0], f"the family's {loss_name or 'default'} loss did not fall: {loss}"
    assert kept[1] >= kept[0] - DLIB_FORGET_MARGIN, f"forgot: AUC {kept[0]:.4f} -> {kept[1]:.4f}"
