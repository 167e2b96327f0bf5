"""Compare the registered face detectors on a photo folder (default ../shared/data/celeba-wild).

Prints a markdown table: faces found, ms per image (single thread, after a warm-up), photos with
several faces, and how often the largest face differs from another detector's (IoU < 0.3). Writes
one contact sheet of aligned crops per detector to --out, numbered, to look at for wrong faces
and misalignments.

    .venv/bin/python benchmarks/detectors.py --sample 200 --out work/bench/detectors
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facemetric.data.align import align_face
from facemetric.data.detect import available_detectors, create_detector
from facemetric.data.detection import Detection
from facemetric.data.image import load_image
from facemetric.data.split import list_identity_images
from facemetric.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def iou(a: Detection, b: Detection) -> float:
    ax1, ay1, ax2, ay2 = a.box
    bx1, by1, bx2, by2 = b.box
    w, h = max(0.0, min(ax2, bx2) - max(ax1, bx1)), max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = w * h
    return inter / (a.area + b.area - inter + 1e-9)


def contact_sheet(crops: list[np.ndarray | None], path: Path, columns: int = 16) -> None:
    size = 112
    rows = (len(crops) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, rows * size), (255, 0, 255))
    draw = ImageDraw.Draw(sheet)
    for i, crop in enumerate(crops):
        x, y = (i % columns) * size, (i // columns) * size
        if crop is not None:
            sheet.paste(Image.fromarray(crop), (x, y))
        draw.text((x + 2, y + 1), str(i), fill=(255, 255, 0))
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "celeba-wild"))
    parser.add_argument("--sample", type=int, default=200, help="photos drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detectors", default=",".join(available_detectors()))
    parser.add_argument("--out", default=str(REPO / "work" / "bench" / "detectors"))
    parser.add_argument("--sheet", type=int, default=128, help="crops per contact sheet")
    args = parser.parse_args(argv)

    sources = [s for images in list_identity_images(args.root).values() for s in images]
    if args.sample:
        sources = random.Random(args.seed).sample(sources, min(args.sample, len(sources)))
    images = [load_image(Path(args.root) / s) for s in sources]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    largest: dict[str, list[Detection | None]] = {}
    rows = []
    for name in args.detectors.split(","):
        try:
            detector = create_detector(name, threads=1)
        except ConfigError as exc:
            print(f"skipping {name}: {exc}")
            continue
        detector.detect(images[0])  # warm-up: sessions allocate on the first call
        found, multi, seconds = [], 0, 0.0
        for image in images:
            start = time.perf_counter()
            faces = detector.detect(image)
            seconds += time.perf_counter() - start
            multi += len(faces) > 1
            found.append(max(faces, key=lambda d: d.area) if faces else None)
        largest[name] = found
        crops = [
            align_face(img, det.landmarks) if det else None
            for img, det in zip(images, found, strict=True)
        ]
        contact_sheet(crops[: args.sheet], out / f"{name}.png")
        hits = sum(d is not None for d in found)
        rows.append((name, hits, 1000 * seconds / len(images), multi))

    print(f"\n{len(images)} photos from {args.root} (seed {args.seed}); contact sheets in {out}\n")
    print(
        "| detector | faces found | found rate | ms / image | photos with >1 face | "
        "largest face differs from another detector |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, hits, ms, multi in rows:
        differ = 0
        for i in range(len(images)):
            mine = largest[name][i]
            others = [d for o in largest if o != name and (d := largest[o][i]) is not None]
            differ += bool(mine is not None and others and max(iou(mine, o) for o in others) < 0.3)
        print(
            f"| {name} | {hits}/{len(images)} | {hits / len(images):.1%} | {ms:.1f} | "
            f"{multi} | {differ} |"
        )
    base_ms = rows[0][2] if rows else 0.0
    for name, _, ms, _ in rows[1:]:
        print(f"{name}: {ms / base_ms:.2f}x the time of {rows[0][0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
