"""The recipe table of issue 7: which loss, backbone and teacher win at equal CPU time.

Recipes: triplet, ArcFace (margin softmax) and ArcFace + triplet, each on torchvision ResNet50
and the face-shaped IResNet50, each with and without the dlib teacher (12 runs), plus dlib
itself. Every run trains with ``facemetric.train.train`` for the same time budget (``--budget``
minutes, default 60) on the training crops, then ``facemetric.evaluate.evaluate`` measures it on
people none of them trained on: CFP frontal-frontal and frontal-profile 10-fold accuracy and
TAR at FAR 1e-3, and celeba-wild identification rank-1 and open-set TPIR at FPIR 1e-2::

    .venv/bin/python benchmarks/recipes.py --dry-run                  # the plan and its length
    .venv/bin/python benchmarks/recipes.py --budget 1 --only arcface-iresnet50 --max-pairs 200
    .venv/bin/python benchmarks/recipes.py                            # about 13 hours on 2 cores

Finished recipes are skipped when the script is run again (their ``evaluation-*.json`` exist),
so the table can be filled over several sessions. The dlib row is read from
``benchmarks/dlib_baseline.py``'s output (``--dlib DIR``). The table goes to ``OUT/recipes.md``
and ``OUT/recipes.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOSSES = ("triplet", "arcface", "arcface+triplet")
BACKBONES = ("resnet50", "iresnet50")
TEACHERS = (None, "dlib")
COLUMNS = {  # column title -> (protocol, metric key in the evaluation JSON)
    "CFP-FF acc": ("FF", "accuracy"),
    "CFP-FF TAR@1e-3": ("FF", "tar_at_far_1e-3"),
    "CFP-FP acc": ("FP", "accuracy"),
    "CFP-FP TAR@1e-3": ("FP", "tar_at_far_1e-3"),
    "wild rank-1": ("wild", "rank1"),
    "wild TPIR@FPIR1e-2": ("wild", "tpir_at_fpir_1e-2"),
}
EVAL_MINUTES = 6.0  # rough cost of the three evaluations of one model on 2 cores


@dataclass(frozen=True)
class Recipe:
    loss: str
    backbone: str
    teacher: str | None

    @property
    def name(self) -> str:
        return f"{self.loss.replace('+', '-')}-{self.backbone}" + (
            f"-{self.teacher}" if self.teacher else ""
        )


def all_recipes() -> list[Recipe]:
    return [Recipe(*r) for r in itertools.product(LOSSES, BACKBONES, TEACHERS)]


def train_recipe(recipe: Recipe, args: argparse.Namespace) -> Path:
    from facemetric.train import TrainConfig, train

    out = args.out / "runs" / recipe.name
    config = TrainConfig(
        data=tuple(str(d) for d in args.data),
        out=str(out),
        backbone=recipe.backbone,
        loss=recipe.loss,
        teacher=recipe.teacher,
        epochs=10_000,  # the time budget ends every run
        max_minutes=args.budget,
        patience=10_000,
        seed=args.seed,
        resume=(out / "last.pt").is_file(),
    )
    return train(config)


def evaluate_run(run: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The three protocols for one model, each stored as evaluation-<protocol>.json."""
    from facemetric.evaluate import EvaluateConfig, evaluate

    model = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
    jobs = {
        "FF": {"pairs": args.cfp / "pairs_FF.tsv", "root": args.cfp},
        "FP": {"pairs": args.cfp / "pairs_FP.tsv", "root": args.cfp},
        "wild": {"identify": args.wild},
    }
    results = {}
    for key, where in jobs.items():
        if key not in args.protocols:
            continue
        path = run / f"evaluation-{key}.json"
        if not path.is_file():
            config = EvaluateConfig(
                model=str(model),
                max_pairs=args.max_pairs,
                flip=args.flip,
                progress=False,
                **where,
            )
            path.write_text(json.dumps(evaluate(config).metrics, indent=1))
        doc = json.loads(path.read_text())
        results[key] = doc.get("identification" if key == "wild" else "verification", {})
    return results


def dlib_row(folder: Path | None) -> dict[str, dict[str, Any]] | None:
    """dlib's numbers from benchmarks/dlib_baseline.py's output folder, when it is there."""
    if folder is None:
        return None
    row: dict[str, dict[str, Any]] = {}
    for key, sub in (("FF", "pairs_FF"), ("FP", "pairs_FP"), ("wild", "identify")):
        path = folder / sub / "evaluation.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            row[key] = doc.get("identification" if key == "wild" else "verification", {})
    return row or None


def render(rows: dict[str, dict[str, dict[str, Any]]], budget: float) -> str:
    def cell(result: dict[str, dict[str, Any]], column: str) -> str:
        protocol, key = COLUMNS[column]
        value = result.get(protocol, {}).get(key)
        return "-" if value is None else f"{100 * value:.2f}"

    head = ["recipe", *COLUMNS]
    lines = [
        f"Recipes at {budget:g} CPU minutes of training each; metrics in % on unseen people.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, result in rows.items():
        lines.append("| " + " | ".join([name, *(cell(result, c) for c in COLUMNS)]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[Path("work/crops/celeba-crops")])
    parser.add_argument("--cfp", type=Path, default=Path("../shared/data/cfp"))
    parser.add_argument("--wild", type=Path, default=Path("../shared/data/celeba-wild"))
    parser.add_argument("--dlib", type=Path, default=Path("work/bench/dlib"))
    parser.add_argument("--out", type=Path, default=Path("work/bench/recipes"))
    parser.add_argument("--budget", type=float, default=60.0, help="training minutes per recipe")
    parser.add_argument("--only", nargs="+", default=None, help="recipe names to run")
    parser.add_argument("--max-pairs", type=int, default=None, help="fewer pairs (quick checks)")
    parser.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    parser.add_argument(
        "--protocols", nargs="+", choices=["FF", "FP", "wild"], default=["FF", "FP", "wild"]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its length")
    args = parser.parse_args()

    recipes = all_recipes()
    if args.only:
        unknown = set(args.only) - {r.name for r in recipes}
        if unknown:
            parser.error(f"--only: unknown recipes {sorted(unknown)}; see --dry-run")
        recipes = [r for r in recipes if r.name in args.only]
    hours = len(recipes) * (args.budget + EVAL_MINUTES) / 60
    print(f"{len(recipes)} recipes x ({args.budget:g} min training + ~{EVAL_MINUTES:g} min eval)"
          f" = about {hours:.1f} h")  # fmt: skip
    if args.dry_run:
        for r in recipes:
            print(f"  {r.name}: --loss {r.loss} --backbone {r.backbone} --teacher {r.teacher}")
        return

    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for recipe in recipes:
        run = args.out / "runs" / recipe.name
        start = time.monotonic()
        done = all((run / f"evaluation-{p}.json").is_file() for p in args.protocols)
        if not done:
            run = train_recipe(recipe, args)
        rows[recipe.name] = evaluate_run(run, args)
        print(f"{recipe.name}: done in {(time.monotonic() - start) / 60:.1f} min", flush=True)
    if (dlib := dlib_row(args.dlib)) is not None:
        rows["dlib (pretrained)"] = dlib
    else:
        print(f"no dlib baseline in {args.dlib}: run benchmarks/dlib_baseline.py --out {args.dlib}")
    table = render(rows, args.budget)
    (args.out / "recipes.md").write_text(table)
    (args.out / "recipes.json").write_text(
        json.dumps({"budget_minutes": args.budget, "rows": rows}, indent=1)
    )
    print(table)


if __name__ == "__main__":
    main()
