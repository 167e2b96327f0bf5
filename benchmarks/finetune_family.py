"""A user's few people: fine-tuning the pretrained network on 10 ORL people ("the family").

ORL is in none of the sets the models here trained on. The family is ORL's s1-s10: photos 1-5
train the fine-tune (``facemetric train``, the default recipe unless ``--set`` says otherwise),
photos 6-10 measure it: one photo of each person enrolled, half the people kept out as strangers
(TPIR at FPIR 1e-2: people found while strangers are refused) and rank-1. The 30 ORL people neither
model trained on (s11-s40) and CFP frontal pairs tell whether the fine-tune forgot what the base
knew::

    .venv/bin/python benchmarks/finetune_family.py --work work/ft-family [--cfp]
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from facemetric.data.prepare import PrepareConfig, prepare_crops
from facemetric.evaluate.run import EvaluateConfig, evaluate
from facemetric.train import TrainConfig, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FAMILY = [f"s{i}" for i in range(1, 11)]
UNSEEN = [f"s{i}" for i in range(11, 41)]


def links(crops: Path, out: Path, people: list[str], photos: range | None) -> Path:
    """A folder of links to some crops (``photos``: which numbered photos, None: all)."""
    if out.exists():
        shutil.rmtree(out)
    for person in people:
        (out / person).mkdir(parents=True)
        for crop in sorted((crops / person).glob("*.png")):
            if photos is None or int(crop.stem) in photos:
                (out / person / crop.name).symlink_to(crop.resolve())
    shutil.copy(crops / "prepare.json", out / "prepare.json")
    return out


def measure(model: str, family: Path, unseen: Path, cfp: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, folder in (("family", family), ("unseen", unseen)):
        doc = evaluate(EvaluateConfig(model=model, identify=folder, enrol=1, progress=False))
        ident = doc.metrics["identification"]
        out[name] = {"rank1": ident["rank1"], "tpir_at_fpir_1e-2": ident.get("tpir_at_fpir_1e-2")}
    if cfp:
        pairs = SHARED / "cfp" / "pairs_FF.tsv"
        doc = evaluate(EvaluateConfig(model=model, pairs=pairs, root=pairs.parent, progress=False))
        ver = doc.metrics["verification"]
        out["cfp_ff"] = {"accuracy": ver["accuracy"], "auc": ver["auc"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("work/ft-family"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cfp", action="store_true", help="also CFP frontal pairs (slower)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    crops = args.work / "crops"
    prepare_crops(SHARED / "orl", crops, PrepareConfig(progress=False))
    train_dir = links(crops, args.work / "train", FAMILY, range(1, 6))
    family = links(crops, args.work / "family", FAMILY, range(6, 11))
    unseen = links(crops, args.work / "unseen", UNSEEN, None)
    overrides = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        overrides[key] = json.loads(raw) if raw[:1] in "0123456789-[{tf" else raw
    run = args.work / "run"
    if run.exists():
        shutil.rmtree(run)
    config = TrainConfig(
        data=(str(train_dir),),
        out=str(run),
        batch_p=10,
        batch_k=4,
        epochs=1,
        steps_per_epoch=args.steps,
        val_fraction=0.0,
        progress=False,
        tensorboard=False,
    )
    train(replace(config, **overrides))
    rows = {
        "base (dlib)": measure("dlib", family, unseen, args.cfp),
        "fine-tuned": measure(str(run / "last.pt"), family, unseen, args.cfp),
    }
    print(
        "| model | family rank-1 | family TPIR@FPIR 1e-2 | unseen rank-1 | unseen TPIR@FPIR 1e-2"
        + (" | CFP-FF acc |" if args.cfp else " |")
    )
    for name, r in rows.items():
        cells = [r["family"]["rank1"], r["family"]["tpir_at_fpir_1e-2"]]
        cells += [r["unseen"]["rank1"], r["unseen"]["tpir_at_fpir_1e-2"]]
        if args.cfp:
            cells.append(r["cfp_ff"]["accuracy"])
        print(f"| {name} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + " |")
    (args.work / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
