"""Does fine-tuning the pretrained dlib network help on people it never saw, and never hurt?

CFP's identities are split in two halves by a seed. The network is fine-tuned (``facemetric
train``, the default recipe unless options say otherwise) on half A's crops, frontal and profile;
then the base model and the fine-tune are compared on half B, people the fine-tune never saw, on
balanced pairs built from all of B's photos: frontal-frontal (FF: every genuine pair, as many
impostor pairs drawn at random) and frontal-profile (FP: likewise). Accuracy is 10-fold (folds by
identity, threshold chosen on the other nine), with AUC and TAR at FAR 1e-3. Crops come from
``facemetric data align ../shared/data/cfp CROPS`` (dlib template)::

    .venv/bin/python benchmarks/finetune_cfp.py --crops work/crops/cfp-dlib --work work/ft-cfp \\
        --splits 1 2
    .venv/bin/python benchmarks/finetune_cfp.py ... --set loss=triplet --set augment=true \\
        --set teacher_weight=3 --tag triplet

The goal (issue 13): on B, FF drops by at most 0.3 points and FP gains at least 1 point, on two
different splits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.evaluate import metrics as M
from facemetric.evaluate.embed import EmbeddingSet, embed_folder
from facemetric.models import load_embedder
from facemetric.train import TrainConfig, train

SETTINGS_FILE = "prepare.json"


def split_identities(crops: Path, seed: int) -> tuple[list[str], list[str]]:
    people = sorted(p.name for p in crops.iterdir() if p.is_dir())
    order = np.random.default_rng(seed).permutation(len(people))
    half = len(people) // 2
    return sorted(people[i] for i in order[:half]), sorted(people[i] for i in order[half:])


def link_folder(crops: Path, people: list[str], out: Path) -> Path:
    """A folder of links to ``people``'s crop folders, with the crops' prepare.json."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for person in people:
        (out / person).symlink_to((crops / person).resolve(), target_is_directory=True)
    shutil.copy(crops / SETTINGS_FILE, out / SETTINGS_FILE)
    return out


def balanced_pairs(
    paths: list[str], kind: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, same, fold) over ``paths`` (``person/frontal_01.png``...): every genuine pair of
    the kind (FF: frontal x frontal, FP: frontal x profile) and as many impostor pairs."""
    people = np.array([p.split("/")[0] for p in paths])
    frontal = np.array(["/frontal" in p for p in paths])
    second = frontal if kind == "FF" else ~frontal
    names = sorted(set(people.tolist()))
    fold_of = {name: k % 10 for k, name in enumerate(names)}
    gi, gj = [], []
    for name in names:
        first_rows = np.flatnonzero((people == name) & frontal)
        second_rows = np.flatnonzero((people == name) & second)
        for a in first_rows:
            for b in second_rows:
                if kind == "FP" or a < b:
                    gi.append(a)
                    gj.append(b)
    rng = np.random.default_rng(seed)
    f_rows, s_rows = np.flatnonzero(frontal), np.flatnonzero(second)
    ii: list[int] = []
    jj: list[int] = []
    while len(ii) < len(gi):
        a, b = int(rng.choice(f_rows)), int(rng.choice(s_rows))
        if people[a] != people[b]:
            ii.append(a)
            jj.append(b)
    i = np.array(gi + ii)
    j = np.array(gj + jj)
    same = np.array([True] * len(gi) + [False] * len(ii))
    folds = np.array([fold_of[people[k]] for k in i])
    return i, j, same, folds


def verification(es: EmbeddingSet, kind: str, seed: int) -> dict[str, float]:
    i, j, same, folds = balanced_pairs(es.paths, kind, seed)
    scores = np.einsum("nd,nd->n", es.embeddings[i].astype(np.float64), es.embeddings[j])
    kf = M.kfold_accuracy(scores, same, folds)
    return {
        "accuracy": kf.mean,
        "accuracy_std": kf.std,
        "auc": M.auc(scores, same),
        "tar_at_far_1e-3": M.tar_at_far(scores, same, 1e-3).tar,
        "pairs": len(same),
    }


def parse_settings(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=Path, required=True, help="CFP crops (dlib template)")
    parser.add_argument("--work", type=Path, required=True, help="runs and results go here")
    parser.add_argument("--splits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=600, help="training steps in all")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="TrainConfig field"
    )
    parser.add_argument("--tag", default="default", help="name of this recipe in the results")
    args = parser.parse_args()

    overrides = parse_settings(args.set)
    results: dict[str, Any] = {"recipe": {"steps": args.steps, **overrides}, "splits": {}}
    base = load_embedder("dlib")
    for seed in args.splits:
        a, b = split_identities(args.crops, seed)
        root = args.work / f"split{seed}"
        train_dir = link_folder(args.crops, a, root / "A")
        test_dir = link_folder(args.crops, b, root / "B")
        out = root / "runs" / args.tag
        if out.exists():
            shutil.rmtree(out)
        epochs = 5
        config = TrainConfig(
            data=(str(train_dir),),
            out=str(out),
            epochs=epochs,
            steps_per_epoch=max(1, args.steps // epochs),
            seed=seed,
            patience=0,
            progress=False,
            tensorboard=False,
        )
        config = replace(config, **overrides)
        start = time.perf_counter()
        run = train(config)
        minutes = (time.perf_counter() - start) / 60
        tuned = load_embedder(run / "best.pt")
        row: dict[str, Any] = {"train_identities": len(a), "test_identities": len(b)}
        row["train_minutes"] = round(minutes, 1)
        sets = {}
        for name, model in (("base", base), ("tuned", tuned)):
            es = embed_folder(model, test_dir, aligned=True, progress=False, cache=False)
            sets[name] = es
            row[name] = {kind: verification(es, kind, seed) for kind in ("FF", "FP")}
        drift = np.einsum("nd,nd->n", sets["base"].embeddings, sets["tuned"].embeddings)
        row["base_vs_tuned_cosine"] = float(drift.mean())
        for kind in ("FF", "FP"):
            delta = row["tuned"][kind]["accuracy"] - row["base"][kind]["accuracy"]
            row[f"delta_{kind}_points"] = round(100 * delta, 2)
        results["splits"][str(seed)] = row
        print(
            f"split {seed} ({len(a)} train / {len(b)} test people, {minutes:.1f} min): "
            f"FF {100 * row['base']['FF']['accuracy']:.2f} -> "
            f"{100 * row['tuned']['FF']['accuracy']:.2f} ({row['delta_FF_points']:+.2f}), "
            f"FP {100 * row['base']['FP']['accuracy']:.2f} -> "
            f"{100 * row['tuned']['FP']['accuracy']:.2f} ({row['delta_FP_points']:+.2f}), "
            f"AUC FP {row['base']['FP']['auc']:.4f} -> {row['tuned']['FP']['auc']:.4f}, "
            f"old/new embedding cosine {row['base_vs_tuned_cosine']:.3f}",
            flush=True,
        )
    path = args.work / f"results-{args.tag}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
