"""``facemetric embed / evaluate / compare`` end to end: real images, real checkpoints, real files.

``compare`` is checked on three models whose quality is known by construction: the tiny
backbone with hand-set weights reads, from solid-colour crops, either the red level (which
encodes the identity), the green level (random per image) or both.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.cli import main
from facemetric.errors import ConfigError
from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import EmbeddingSet
from facemetric.evaluate.protocols import read_pairs
from facemetric.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from facemetric.paths import best_model_path

REPO = Path(__file__).resolve().parents[1]
FACEMETRIC = REPO / ".venv" / "bin" / "facemetric"
LEVELS = 8  # thermometer code: channel j fires when the level exceeds j / LEVELS


# ---------------------------------------------------------------- models with known quality


def thermometer_model(path: Path, red: float, green: float) -> Path:
    """Tiny backbone whose embedding is ``red`` x code(R) ++ ``green`` x code(G) of the crop."""
    spec = ModelSpec(
        backbone="tiny", embedding_dim=16, input_size=64, mean=(0, 0, 0), std=(1, 1, 1)
    )
    model = build_model(spec)
    sd = model.state_dict()
    for key in sd:
        if key.endswith(".0.weight") or key.startswith("head.1"):
            sd[key].zero_()
    conv1, bias1 = sd["backbone.body.0.0.weight"], sd["backbone.body.0.1.bias"]
    for j in range(LEVELS):
        conv1[j, 0, 1, 1] = 1.0  # channels 0-7: relu(R - t_j)
        conv1[LEVELS + j, 1, 1, 1] = 1.0  # channels 8-15: relu(G - t_j)
        bias1[j] = bias1[LEVELS + j] = -j / LEVELS
    for block in (1, 2, 3):  # later blocks copy the 16 channels through (centre tap)
        w = sd[f"backbone.body.{block}.0.weight"]
        for c in range(2 * LEVELS):
            w[c, c, 1, 1] = 1.0
    head = sd["head.1.weight"]
    for c in range(LEVELS):
        head[c, c] = red
        head[LEVELS + c, LEVELS + c] = green
    model.load_state_dict(sd)
    save_checkpoint(path, model.eval(), meta={"construction": {"red": red, "green": green}})
    return path


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """8 identities x 6 solid-colour 64 px crops: red = identity, green/blue random; pairs tsv."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    paths, ids = [], []
    for k in range(LEVELS):  # identity k's red level fires exactly k + 1 channels
        (root / f"id{k}").mkdir()
        for i in range(6):
            rgb = [
                int(255 * (k + 0.5) / LEVELS),
                int(rng.integers(0, 256)),
                int(rng.integers(0, 256)),
            ]
            img = np.full((64, 64, 3), rgb, np.uint8)
            Image.fromarray(img).save(root / f"id{k}/img{i}.png")
            paths.append(f"id{k}/img{i}.png")
            ids.append(k)
    i, j = np.triu_indices(len(paths), k=1)
    same = np.array(ids)[i] == np.array(ids)[j]
    imp = rng.choice(np.flatnonzero(~same), size=int(same.sum()), replace=False)
    chosen = np.r_[np.flatnonzero(same), imp]
    lines = ["fold\tsame\timage1\timage2"]
    for n, c in enumerate(chosen):
        lines.append(f"{n % 5 + 1}\t{int(same[c])}\t{paths[i[c]]}\t{paths[j[c]]}")
    pairs = root / "pairs.tsv"
    pairs.write_text("\n".join(lines) + "\n")
    mark_as_crops(root, "arcface", 64)  # the thermometer models' template
    return root, pairs


def mark_as_crops(root: Path, template: str, size: int) -> None:
    """The prepare.json ``facemetric data align`` leaves in a folder of crops it made."""
    settings = {"template": template, "size": size, "detector": "retinaface", "multi": "largest"}
    (root / "prepare.json").write_text(json.dumps(settings))


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, red, green in (("good", 1.0, 0.0), ("mixed", 1.0, 0.5), ("blind", 0.0, 1.0)):
        (base / name).mkdir()
        thermometer_model(base / name / "best.pt", red, green)
        runs[name] = base / name
    return runs


def test_compare_ranks_runs_of_known_quality_and_promotes(
    colour_set: tuple[Path, Path], three_runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    root, pairs = colour_set
    runs = [str(three_runs[n]) for n in ("blind", "good", "mixed")]
    args = ["--pairs", str(pairs), "--root", str(root), "--aligned", "--quiet", "--workers", "0"]
    out = tmp_path / "cmp"
    # promotion needs a calibrated threshold: 120 impostor pairs are too few for FAR 1e-3, every
    # pair of the folder's 48 images (1008 impostor pairs) is enough
    calibrate = ["evaluate", str(three_runs["good"]), "--identify", str(root), "--calibrate"]
    assert main([*calibrate, "--quiet", "--workers", "0", "--out", str(tmp_path / "cal")]) == 0
    assert main(["compare", *runs, *args, "--promote", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    doc = json.loads((out / "comparison.json").read_text())
    names = [r["name"] for r in doc["rows"]]
    assert names == ["good", "mixed", "blind"]
    acc = {r["name"]: r["accuracy"] for r in doc["rows"]}
    assert acc["good"] == 1.0 and 0.55 < acc["mixed"] < 0.97 and acc["blind"] < acc["mixed"] - 0.1
    assert table.index("good") < table.index("mixed") < table.index("blind")
    md = (out / "comparison.md").read_text()
    assert "| good | tiny | 1.0000 ± 0.0000 |" in md and "Promoted `good`" in md
    # EER sorts the other way round (lower is better) and gives the same order here
    assert main(["compare", *runs, *args, "--metric", "eer", "--out", str(out)]) == 0
    doc = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in doc["rows"]] == ["good", "mixed", "blind"]
    assert all(r["reused"] for r in doc["rows"])  # evaluations stored beside the runs were reused

    # the promoted model is 'best', and `embed best` uses it
    best = load_checkpoint(best_model_path())
    assert best.meta["promoted_from"] == str((three_runs["good"] / "best.pt").resolve())
    assert best.meta["promoted_by"] == {"metric": "accuracy", "value": 1.0}
    emb_best, emb_good = tmp_path / "best.npz", tmp_path / "good.npz"
    for model, npz in (("best", emb_best), (str(three_runs["good"]), emb_good)):
        assert main(["embed", model, str(root), "--out", str(npz), "--aligned", "--quiet"]) == 0
    a, b = EmbeddingSet.load(emb_best), EmbeddingSet.load(emb_good)
    assert a.paths == b.paths
    np.testing.assert_allclose(a.embeddings, b.embeddings, rtol=0, atol=1e-6)
    runner_up = tmp_path / "mixed.npz"  # and not the runner-up's
    assert main(["embed", runs[2], str(root), "--out", str(runner_up), "--aligned", "--quiet"]) == 0
    assert not np.allclose(EmbeddingSet.load(runner_up).embeddings, a.embeddings)


def test_compare_reevaluates_stale_runs_and_shows_external_baselines(
    colour_set: tuple[Path, Path], three_runs: dict[str, Path], tmp_path: Path
) -> None:
    root, pairs = colour_set
    args = ["--pairs", str(pairs), "--root", str(root), "--aligned", "--quiet", "--workers", "0"]
    run = three_runs["mixed"]
    assert main(["compare", str(run), *args, "--out", str(tmp_path / "a")]) == 0
    # calibrating rewrites the checkpoint; its stored evaluation stays valid (fingerprint updated)
    ev = tmp_path / "ev"
    assert main(["evaluate", str(run), *args, "--out", str(ev), "--calibrate", "--eer"]) == 0
    # an external evaluation (the dlib baseline writes the same JSON) that beats every model
    ext = json.loads((ev / "evaluation.json").read_text())
    ext["model"] = {"name": "baseline", "backbone": "dlib-resnet"}
    ext["verification"]["accuracy"] = 1.5
    (tmp_path / "baseline.json").write_text(json.dumps(ext))
    # a stale evaluation: new weights (scaled: same quality, cosine ignores scale) in "good"
    thermometer_model(three_runs["good"] / "best.pt", 3.0, 0.0)
    calibrate = ["evaluate", str(three_runs["good"]), "--identify", str(root), "--calibrate"]
    assert main([*calibrate, "--quiet", "--workers", "0", "--out", str(tmp_path / "cal")]) == 0
    out = tmp_path / "b"
    cmd = ["compare", str(three_runs["good"]), str(run), str(tmp_path / "baseline.json"), *args]
    assert main([*cmd, "--promote", "--out", str(out)]) == 0
    doc = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in doc["rows"]] == ["baseline", "good", "mixed"]
    reused = {r["name"]: r["reused"] for r in doc["rows"]}
    assert reused == {"baseline": True, "good": False, "mixed": True}
    assert doc["promoted_run"] == "good" and "external baseline" in doc["notes"][0]


def test_evaluate_calibrates_and_stores_the_threshold(
    colour_set: tuple[Path, Path], tmp_path: Path
) -> None:
    root, pairs = colour_set
    ckpt = thermometer_model(tmp_path / "m.pt", 1.0, 2.0)
    out = tmp_path / "ev"
    code = main(
        ["evaluate", str(ckpt), "--pairs", str(pairs), "--root", str(root), "--aligned",
         "--quiet", "--out", str(out), "--calibrate", "--target-far", "0.1"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads((out / "evaluation.json").read_text())
    ver = doc["verification"]
    stored = load_checkpoint(ckpt)
    assert stored.threshold == pytest.approx(ver["threshold"])
    assert stored.meta["calibration"]["method"] == "far"
    assert stored.meta["calibration"]["target_far"] == 0.1
    assert stored.meta["calibration"]["far"] <= 0.1
    # the numbers agree with the metrics recomputed from `facemetric embed`'s output
    npz = tmp_path / "e.npz"
    assert main(["embed", str(ckpt), str(root), "--out", str(npz), "--aligned", "--quiet"]) == 0
    es = EmbeddingSet.load(npz)
    proto = read_pairs(pairs)
    s = np.sum(
        es.take([p.image1 for p in proto.pairs]) * es.take([p.image2 for p in proto.pairs]), 1
    )
    y = np.array([p.same for p in proto.pairs])
    assert ver["auc"] == pytest.approx(M.auc(s, y), abs=1e-6)
    assert ver["threshold"] == pytest.approx(M.threshold_at_far(s[~y], 0.1), abs=1e-6)
    assert ver["tar_at_far_1e-2"] == pytest.approx(M.tar_at_far(s, y, 1e-2).tar)


@pytest.mark.slow
def test_evaluate_on_cfp_with_a_trained_tiny_model(tmp_path: Path) -> None:
    cfp, orl = shared_set("cfp"), shared_set("orl")
    from facemetric.train import TrainConfig, train

    run = train(
        TrainConfig(
            data=(str(orl),), out=str(tmp_path / "run"), backbone="tiny", dim=32, size=64,
            batch_p=8, batch_k=4, epochs=1, steps_per_epoch=6, val_fraction=0.2,
            progress=False, tensorboard=False, check_crops=False,  # ORL: 92x112 faces
        )
    )  # fmt: skip
    before = load_checkpoint(run / "best.pt").threshold  # the trainer's validation threshold
    out = tmp_path / "report"
    code = main(
        ["evaluate", str(run), "--pairs", str(cfp / "pairs_FF.tsv"), "--root", str(cfp),
         "--max-pairs", "200", "--identify", str(orl), "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads((out / "evaluation.json").read_text())
    ver, ident = doc["verification"], doc["identification"]
    assert ver["pairs"] == 200 and ver["folds"] == 10 and len(ver["fold_accuracies"]) == 10
    for key in ("accuracy", "auc", "eer", "tar_at_far_1e-2", "tar_at_far_1e-3", "faces_found"):
        assert 0.0 <= ver[key] <= 1.0, key
    assert ver["accuracy_std"] >= 0 and isinstance(ver["threshold"], float)
    assert ident["identities_enrolled"] == 20 and ident["identities_not_enrolled"] == 20
    for key in ("rank1", "rank5", "tpir_at_fpir_1e-2"):
        assert 0.0 <= ident[key] <= 1.0, key
    assert ident["rank5"] >= ident["rank1"]
    assert 0 <= ident["strangers_matched"] <= ident["strangers"] == 200
    md = (out / "evaluation.md").read_text()
    assert "| accuracy (10-fold) |" in md and "| rank-1 |" in md
    for name in ("roc.png", "similarity.png", "embedding_map.png"):
        with Image.open(out / name) as im:
            assert im.size[0] > 300 and im.size[1] > 300
        assert f"![{name}]({name})" in md
    assert load_checkpoint(run / "best.pt").threshold == before  # no --calibrate: untouched


def test_user_errors_are_one_line(tmp_path: Path, untrained_tiny_checkpoint: Path, capsys) -> None:
    cfp = shared_set("cfp")
    pairs = tmp_path / "p.tsv"
    pairs.write_text("fold\tsame\timage1\timage2\n1\t1\t001/frontal_01.jpg\t001/nope.jpg\n")
    ck = str(untrained_tiny_checkpoint)
    few = tmp_path / "few"  # 4 people x 2 photos: 24 impostor pairs, too few for FAR 1e-3
    for person in ("001", "002", "003", "004"):
        (few / person).mkdir(parents=True)
        for photo in ("frontal_01.jpg", "frontal_02.jpg"):
            (few / person / photo).symlink_to(cfp / person / photo)
    cases = [
        (["evaluate", ck, "--pairs", str(pairs), "--root", str(cfp), "--out", str(tmp_path)],
         "1 image(s) named in"),
        (["evaluate", ck, "--out", str(tmp_path)], "nothing to evaluate"),
        (["evaluate", ck, "--pairs", str(pairs), "--out", str(tmp_path)], "--pairs needs --root"),
        (["evaluate", ck, "--identify", str(few), "--calibrate", "--out", str(tmp_path),
          "--quiet"], "too few impostor pairs to tell a FAR of 0.001"),
        (["embed", str(tmp_path / "nope.pt"), str(cfp), "--out", str(tmp_path / "x.npz")],
         "nope.pt: model not found"),
        (["compare", ck, "--pairs", str(pairs), "--root", str(cfp), "--metric", "speed"],
         "--metric 'speed'"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_embed_console_script_detects_and_aligns(tmp_path: Path, untrained_tiny_checkpoint) -> None:
    """The real console script on loose CFP crops: detection + alignment in worker processes."""
    cfp = shared_set("cfp")
    data = tmp_path / "photos"
    for person in ("001", "002", "003"):
        (data / person).mkdir(parents=True)
        for src in sorted((cfp / person).glob("*.jpg"))[:12]:
            (data / person / src.name).symlink_to(src)
    (data / "003" / "broken.jpg").write_bytes(b"not an image")
    from skimage import data as skdata  # a picture with no face: embedded whole, found=False

    Image.fromarray(skdata.coffee()).save(data / "003" / "coffee.png")
    out = tmp_path / "emb.npz"
    proc = subprocess.run(
        [str(FACEMETRIC), "embed", str(untrained_tiny_checkpoint), str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "skipped 003/broken.jpg" in proc.stdout
    with np.load(out) as z:
        assert set(z.files) >= {"paths", "embeddings", "found"}
        paths, emb, found = list(z["paths"]), z["embeddings"], z["found"]
    assert len(paths) == 37 and "001/frontal_01.jpg" in paths and "003/coffee.png" in paths
    assert emb.dtype == np.float32 and emb.shape == (37, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert found.dtype == bool and not found[paths.index("003/coffee.png")]
    assert found.sum() >= 30  # faces found in (nearly) every CFP crop
    # the same crops embedded in-process without workers give the same embeddings
    from facemetric.evaluate.embed import embed_folder

    again = embed_folder(untrained_tiny_checkpoint, data, workers=0, progress=False, cache=False)
    assert again.paths == paths
    assert np.allclose(again.embeddings, emb, atol=1e-5)


def test_promote_removes_a_stale_onnx_export(three_runs: dict[str, Path]) -> None:
    from facemetric.evaluate import promote

    stale = best_model_path().with_suffix(".onnx")
    stale.write_bytes(b"an export of some older model")
    dst = promote(three_runs["blind"])
    assert dst == best_model_path() and not stale.exists()
    assert load_checkpoint(dst).meta["promoted_run"] == "blind"
    with pytest.raises(ConfigError, match="already the promoted model"):
        promote("best")


# ---------------------------------------------------------------- issue 14: items 3 and 7


def copy_model(tmp_path: Path, name: str, meta: dict | None = None) -> Path:
    """A thermometer model of its own (calibration rewrites it), with ``meta`` entries."""
    from facemetric.models.checkpoint import update_checkpoint

    (tmp_path / name).mkdir()
    path = thermometer_model(tmp_path / name / "best.pt", 1.0, 0.0)
    if meta:
        update_checkpoint(path, **meta)
    return path


def test_crops_of_another_template_are_refused(
    colour_set: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    root, pairs = colour_set
    dlib_crops = tmp_path / "dlib_crops"
    dlib_crops.mkdir()
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        (dlib_crops / person.name).symlink_to(person, target_is_directory=True)
    mark_as_crops(dlib_crops, "dlib", 150)
    ckpt = copy_model(tmp_path, "m")
    for argv in (
        ["--pairs", str(pairs), "--root", str(dlib_crops)],
        ["--identify", str(dlib_crops), "--calibrate"],
    ):
        code = main(["evaluate", str(ckpt), *argv, "--quiet", "--out", str(tmp_path / "ev")])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"facemetric: error: {dlib_crops}: crops cut for the dlib template, but {ckpt} "
            f"needs arcface crops; cut them for it: facemetric data align PHOTOS OUT --model {ckpt}"
        )
    assert load_checkpoint(ckpt).threshold is None  # nothing stored
    # a folder of links to some people of a crops folder is crops too (the demo's test people)
    linked = tmp_path / "linked"
    for person in ("id0", "id1", "id2", "id3", "id4"):
        (linked / person).mkdir(parents=True)
        for image in sorted((root / person).iterdir()):
            (linked / person / image.name).symlink_to(image)
    out = tmp_path / "ev_linked"
    argv = ["evaluate", str(ckpt), "--identify", str(linked), "--aligned", "--quiet"]
    assert main([*argv, "--out", str(out), "--workers", "0"]) == 0
    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["fingerprint"]["inputs"] == ["crops"] and doc["fingerprint"]["detector"] is None


def test_rank_k_is_left_out_when_k_reaches_the_people_enrolled(
    colour_set: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """Issue 14 item 7: rank-5 = 1.0 was reported with 4 people enrolled."""
    root, _ = colour_set
    ckpt = copy_model(tmp_path, "m")
    out = tmp_path / "ev"
    argv = ["evaluate", str(ckpt), "--identify", str(root), "--quiet", "--workers", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    ident = json.loads((out / "evaluation.json").read_text())["identification"]
    assert ident["identities_enrolled"] == 4
    assert ident["rank5"] is None and ident["rank1"] == 1.0
    assert ident["notes"] == [
        "rank-5 is left out: with 4 people enrolled every probe finds its person within the "
        "first 5; enrol more than 5 people for it"
    ]
    md = (out / "evaluation.md").read_text()
    assert "| rank-5 | - |" in md and "- rank-5 is left out" in md


def test_evaluate_split_uses_its_test_people_and_calibrates(
    colour_set: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """Issue 14 item 7: ``evaluate MODEL --split DIR`` identifies the split's test.txt people."""
    root, _ = colour_set
    split = tmp_path / "split"
    argv = ["data", "split", str(root), "--val", "0.25", "--test", "0.5", "--out", str(split)]
    assert main(argv) == 0
    test_people = sorted({line.split("/")[0] for line in (split / "test.txt").read_text().split()})
    assert len(test_people) == 4
    ckpt = copy_model(tmp_path, "m")
    out = tmp_path / "ev"
    argv = ["evaluate", str(ckpt), "--split", str(split), "--quiet", "--workers", "0"]
    assert main([*argv, "--calibrate", "--target-far", "0.01", "--out", str(out)]) == 0
    doc = json.loads((out / "evaluation.json").read_text())
    ident = doc["identification"]
    assert ident["split"] == str(split) and ident["root"] == str(root.resolve())
    assert ident["identities_enrolled"] + ident["identities_not_enrolled"] == 4
    assert ident["probes"] + ident["gallery_images"] + ident["strangers"] == 4 * 6
    cal = load_checkpoint(ckpt).meta["calibration"]
    assert cal["split"] == str(split) and cal["genuine_pairs"] == 4 * 15
    assert cal["impostor_pairs"] == 24 * 23 // 2 - 4 * 15  # every pair of the test people only
    assert load_checkpoint(ckpt).threshold == pytest.approx(cal["threshold"])
    assert "(test people of" in (out / "evaluation.md").read_text()
    # the root comes from split.json, or from --root when the data moved
    meta = json.loads((split / "split.json").read_text())
    (split / "split.json").write_text(json.dumps({**meta, "root": str(tmp_path / "gone")}))
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "test.txt are missing under" in err and "pass --root DIR" in err
    assert main([*argv, "--root", str(root), "--out", str(out)]) == 0
    # --split and --identify both name the people: argparse refuses the pair
    with pytest.raises(SystemExit):
        main([*argv, "--identify", str(root), "--out", str(out)])
    with pytest.raises(ConfigError, match="give one of them"):
        from facemetric.evaluate.run import EvaluateConfig

        EvaluateConfig(model=str(ckpt), identify=root, split=split)


def test_people_seen_in_training_are_warned_about(
    colour_set: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    """Issue 14 item 7: evaluation on the people the model trained on, without a word."""
    root, pairs = colour_set
    split = tmp_path / "split"
    argv = ["data", "split", str(root), "--val", "0.25", "--test", "0.5", "--out", str(split)]
    assert main(argv) == 0
    capsys.readouterr()
    on_all = copy_model(tmp_path, "all", {"config": {"data": [str(root)], "split": None}})
    on_split = copy_model(
        tmp_path, "on_split", {"config": {"data": [str(root)], "split": str(split)}}
    )
    tuned = copy_model(tmp_path, "tuned", {"config": {"data": [], "init": str(on_split)}})
    base = ["--quiet", "--workers", "0", "--out", str(tmp_path / "ev")]

    def evaluate(ckpt: Path, *argv: str) -> tuple[dict, str]:
        assert main(["evaluate", str(ckpt), *argv, *base]) == 0
        err = capsys.readouterr().err
        return json.loads((tmp_path / "ev" / "evaluation.json").read_text()), err

    doc, err = evaluate(on_all, "--identify", str(root))
    warning = doc["warnings"][0]
    assert warning.startswith("8 of the 8 people evaluated were seen by this model in training")
    assert f"facemetric: warning: {warning}" in err
    assert f"> **Warning:** {warning}" in (tmp_path / "ev" / "evaluation.md").read_text()
    assert doc["overlap"]["overlapping_people"] == 8
    doc, err = evaluate(on_all, "--pairs", str(pairs), "--root", str(root))
    assert doc["overlap"]["overlapping_people"] == 8 and "8 of the 8" in err
    # trained on the split's train.txt (validated on val.txt): its test people are new to it
    doc, err = evaluate(on_split, "--split", str(split))
    assert doc["warnings"] == [] and err == "" and doc["overlap"]["overlapping_people"] == 0
    doc, err = evaluate(on_split, "--identify", str(root))
    assert doc["overlap"]["overlapping_people"] == 4 and "4 of the 8 people" in err
    # a fine-tune inherits the people of the model it started from
    doc, err = evaluate(tuned, "--identify", str(root))
    assert doc["overlap"]["overlapping_people"] == 4 and f"(via {on_split})" in err
    # compare passes the warning on
    cmp = ["compare", str(on_all), "--identify", str(root), "--quiet", "--workers", "0"]
    assert main(cmp) == 0
    assert "note: warning: all: 8 of the 8 people" in capsys.readouterr().out


def test_crop_settings_follow_links_and_refuse_a_mix(
    colour_set: tuple[Path, Path], tmp_path: Path
) -> None:
    from facemetric.evaluate.embed import crop_settings

    root, _ = colour_set
    assert crop_settings(root) == (json.loads((root / "prepare.json").read_text()), root)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "id0").symlink_to(root / "id0", target_is_directory=True)
    (linked / "id1").mkdir()
    (linked / "id1" / ".DS_Store").write_bytes(b"")  # not an image: not looked at
    (linked / "id1" / "a.png").symlink_to(root / "id1" / "img0.png")
    settings = crop_settings(linked)
    assert settings is not None and settings[1] == root.resolve()
    (linked / "id2").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(linked / "id2" / "photo.png")
    with pytest.raises(ConfigError, match="come from folders of different kinds"):
        crop_settings(linked)
    assert crop_settings(tmp_path / "nowhere") is None
