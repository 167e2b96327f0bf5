"""``facemetric data check``: what is in a photo folder and what is wrong with it.

Walks ``ROOT/<identity>/*``, decodes every image with the same loader as the rest of facemetric
(in parallel over the cores), and reports identities, images per identity, unreadable files,
non-images, exact duplicates (same bytes) and near duplicates (perceptual hash within a Hamming
distance), within and across identities, images below a size and identities with too few images.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facemetric.data.image import is_image_path, load_image
from facemetric.errors import ConfigError, DatasetError, ImageReadError

HASH_BITS = 64  # imagehash.phash with hash_size=8


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of ``data check``; every field is a command-line option."""

    min_images: int = 2  # identities with fewer images are reported
    min_size: int = 32  # images whose shorter side is below this many pixels are reported
    # Perceptual-hash bits that may differ. 3 measured here: at 4, tight face crops of different
    # people already collide (19 false groups across identities in celeba-crops' 16k images).
    near_distance: int = 3
    workers: int | None = None  # decoding processes; None = all cores, 1 = in this process
    progress: bool = True

    def __post_init__(self) -> None:
        if self.min_images < 0:
            raise ConfigError(f"min_images={self.min_images}: must be >= 0")
        if self.min_size < 0:
            raise ConfigError(f"min_size={self.min_size}: must be >= 0")
        if not -1 <= self.near_distance <= HASH_BITS:
            raise ConfigError(
                f"near_distance={self.near_distance}: must be in [-1, {HASH_BITS}] (-1 = off)"
            )
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers={self.workers}: must be >= 1")


@dataclass(frozen=True)
class ImageInfo:
    """What one decode told us about one image file (paths relative to the root)."""

    path: str
    sha256: str
    width: int = 0
    height: int = 0
    phash: int | None = None  # 64-bit perceptual hash; None when unreadable
    error: str | None = None


@dataclass
class DuplicateGroup:
    """Files that are the same image (``exact``) or look alike (``near``)."""

    kind: str
    files: list[str]
    identities: list[str]
    max_distance: int = 0

    @property
    def cross_identity(self) -> bool:
        return len(self.identities) > 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cross_identity": self.cross_identity}


@dataclass
class CheckReport:
    """The result of ``check_dataset``; ``to_dict()`` is the ``--json`` output."""

    root: str
    config: CheckConfig
    images_per_identity: dict[str, int] = field(default_factory=dict)  # readable images
    unreadable: list[dict[str, str]] = field(default_factory=list)  # path, reason
    non_images: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # top-level files, nested folders, hidden
    small: list[dict[str, Any]] = field(default_factory=list)  # path, width, height
    exact_duplicates: list[DuplicateGroup] = field(default_factory=list)
    near_duplicates: list[DuplicateGroup] = field(default_factory=list)
    few_images: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def identities(self) -> int:
        return len(self.images_per_identity)

    @property
    def images(self) -> int:
        return sum(self.images_per_identity.values())

    def problems(self) -> dict[str, int]:
        """Counts of the findings that make ``--strict`` fail (non-images only warn)."""
        return {
            "unreadable": len(self.unreadable),
            "small": len(self.small),
            "exact_duplicate_groups": len(self.exact_duplicates),
            "near_duplicate_groups": len(self.near_duplicates),
            "few_images": len(self.few_images),
        }

    @property
    def ok(self) -> bool:
        return not any(self.problems().values())

    def to_dict(self) -> dict[str, Any]:
        counts = sorted(self.images_per_identity.values())
        return {
            "root": self.root,
            "config": asdict(self.config),
            "identities": self.identities,
            "images": self.images,
            "images_per_identity": dict(self.images_per_identity),
            "images_per_identity_stats": _stats(counts),
            "unreadable": list(self.unreadable),
            "non_images": list(self.non_images),
            "ignored": list(self.ignored),
            "small": list(self.small),
            "exact_duplicates": [g.to_dict() for g in self.exact_duplicates],
            "near_duplicates": [g.to_dict() for g in self.near_duplicates],
            "few_images": list(self.few_images),
            "problems": self.problems(),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


def _stats(counts: list[int]) -> dict[str, float]:
    if not counts:
        return {"min": 0, "median": 0, "mean": 0, "max": 0}
    return {
        "min": counts[0],
        "median": float(np.median(counts)),
        "mean": round(float(np.mean(counts)), 2),
        "max": counts[-1],
    }


def inspect_image(root: str, rel: str) -> ImageInfo:
    """Hash, decode and perceptually hash one file (runs in a worker process)."""
    import imagehash
    from PIL import Image

    path = os.path.join(root, rel)
    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
    except OSError as exc:
        return ImageInfo(rel, "", error=f"cannot read file ({exc.strerror or exc})")
    try:
        rgb = load_image(path)
    except ImageReadError as exc:
        return ImageInfo(rel, digest, error=exc.reason)
    h, w = rgb.shape[:2]
    phash = int(str(imagehash.phash(Image.fromarray(rgb), hash_size=8)), 16)
    return ImageInfo(rel, digest, width=w, height=h, phash=phash)


def _walk(root: Path, report: CheckReport) -> list[str]:
    """Relative paths of image files; fills identities, non-images and ignored entries."""
    images: list[str] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            report.ignored.append(entry.name)
            continue
        report.images_per_identity[entry.name] = 0
        for f in sorted(entry.iterdir()):
            rel = f"{entry.name}/{f.name}"
            if f.name.startswith(".") or f.is_dir():
                report.ignored.append(rel)
            elif is_image_path(f.name):
                images.append(rel)
            else:
                report.non_images.append(rel)
    return images


def _decode_all(root: Path, rels: list[str], config: CheckConfig) -> list[ImageInfo]:
    from tqdm import tqdm

    workers = config.workers or os.cpu_count() or 1
    bar = tqdm(
        total=len(rels), desc="checking", unit="img", file=sys.stderr, disable=not config.progress
    )
    results: list[ImageInfo] = []
    with bar:
        if workers == 1 or len(rels) < 64:
            for rel in rels:
                results.append(inspect_image(str(root), rel))
                bar.update()
        else:
            chunk = max(1, min(64, len(rels) // (workers * 8)))
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for info in pool.map(inspect_image, [str(root)] * len(rels), rels, chunksize=chunk):
                    results.append(info)
                    bar.update()
    return results


def near_pairs(
    hashes: np.ndarray, max_distance: int, block: int = 256
) -> list[tuple[int, int, int]]:
    """All ``(i, j, distance)`` with ``i < j`` and Hamming distance <= ``max_distance``.

    ``hashes`` is a (N,) uint64 array. Exhaustive, in blocks so memory stays small: 16k hashes
    are about 134M comparisons, a second or two with numpy.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int, int]] = []
    n = len(hashes)
    for start in range(0, n, block):
        rows = hashes[start : start + block]
        dist = np.bitwise_count(rows[:, None] ^ hashes[None, start:])
        ii, jj = np.nonzero(dist <= max_distance)
        keep = ii < jj  # columns start at the block's first row
        for i, j in zip(ii[keep], jj[keep], strict=True):
            pairs.append((start + int(i), start + int(j), int(dist[i, j])))
    return pairs


def _groups(n: int, edges: list[tuple[int, int, int]]) -> list[tuple[list[int], int]]:
    """Connected components (size >= 2) of a graph over ``n`` nodes, with each max edge weight."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j, _ in edges:
        parent[find(i)] = find(j)
    members: dict[int, list[int]] = {}
    for i, _j, _ in edges:
        members.setdefault(find(i), [])
    for x in range(n):
        r = find(x)
        if r in members:
            members[r].append(x)
    worst: dict[int, int] = {}
    for i, _j, d in edges:
        r = find(i)
        worst[r] = max(worst.get(r, 0), d)
    return sorted(((sorted(m), worst[r]) for r, m in members.items()), key=lambda g: g[0][0])


def _duplicate_group(kind: str, files: list[str], distance: int = 0) -> DuplicateGroup:
    identities = sorted({f.split("/", 1)[0] for f in files})
    return DuplicateGroup(
        kind=kind, files=sorted(files), identities=identities, max_distance=distance
    )


def find_duplicates(
    infos: list[ImageInfo], near_distance: int
) -> tuple[list[DuplicateGroup], list[DuplicateGroup]]:
    """Exact groups (same sha256) and near groups (phash pairs not byte-identical)."""
    by_digest: dict[str, list[str]] = {}
    for info in infos:
        if info.sha256:
            by_digest.setdefault(info.sha256, []).append(info.path)
    exact = sorted(
        (_duplicate_group("exact", files) for files in by_digest.values() if len(files) > 1),
        key=lambda g: g.files[0],
    )
    near: list[DuplicateGroup] = []
    readable = [i for i in infos if i.phash is not None]
    if near_distance >= 0 and len(readable) > 1:
        hashes = np.array([i.phash for i in readable], dtype=np.uint64)
        edges = [
            (i, j, d)
            for i, j, d in near_pairs(hashes, near_distance)
            if readable[i].sha256 != readable[j].sha256
        ]
        for members, worst in _groups(len(readable), edges):
            near.append(_duplicate_group("near", [readable[m].path for m in members], worst))
    return exact, near


def check_dataset(root: str | Path, config: CheckConfig | None = None) -> CheckReport:
    """Inspect every file under ``ROOT/<identity>/`` and report what is wrong."""
    root = Path(root)
    config = config or CheckConfig()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    started = time.perf_counter()
    report = CheckReport(root=str(root), config=config)
    rels = _walk(root, report)
    if not report.images_per_identity:
        raise DatasetError(f"{root}: no identity sub-folders (layout is ROOT/person/image)")
    infos = _decode_all(root, rels, config)
    for info in infos:
        if info.error is not None:
            report.unreadable.append({"path": info.path, "reason": info.error})
            continue
        report.images_per_identity[info.path.split("/", 1)[0]] += 1
        if min(info.width, info.height) < config.min_size:
            report.small.append({"path": info.path, "width": info.width, "height": info.height})
    report.few_images = [
        name for name, n in report.images_per_identity.items() if n < config.min_images
    ]
    report.exact_duplicates, report.near_duplicates = find_duplicates(infos, config.near_distance)
    report.seconds = time.perf_counter() - started
    return report


def _section(title: str, lines: list[str], limit: int) -> list[str]:
    if not lines:
        return []
    out = [f"{title} ({len(lines)}):"]
    out += [f"  {line}" for line in lines[:limit]]
    if len(lines) > limit:
        out.append(f"  ... and {len(lines) - limit} more (see --json)")
    return out


def _group_line(group: DuplicateGroup) -> str:
    where = "ACROSS " + ", ".join(group.identities) if group.cross_identity else "within"
    extra = f", distance <= {group.max_distance}" if group.kind == "near" else ""
    return f"[{where}{extra}] " + "  ".join(group.files)


def render_report(report: CheckReport, limit: int = 10) -> str:
    """The terminal table: summary first, then each kind of finding (``limit`` lines each)."""
    cfg = report.config
    stats = _stats(sorted(report.images_per_identity.values()))
    rows = [
        ("identities", f"{report.identities}"),
        ("images (readable)", f"{report.images}"),
        (
            "images per identity",
            f"min {stats['min']}  median {stats['median']:g}  mean {stats['mean']:g}  "
            f"max {stats['max']}",
        ),
        ("unreadable", f"{len(report.unreadable)}"),
        ("non-images", f"{len(report.non_images)}"),
        (f"smaller than {cfg.min_size} px", f"{len(report.small)}"),
        (
            "exact duplicates",
            f"{len(report.exact_duplicates)} groups, "
            f"{sum(g.cross_identity for g in report.exact_duplicates)} across identities",
        ),
        (
            f"near duplicates (<= {cfg.near_distance} bits)",
            f"{len(report.near_duplicates)} groups, "
            f"{sum(g.cross_identity for g in report.near_duplicates)} across identities",
        ),
        (f"identities with < {cfg.min_images} images", f"{len(report.few_images)}"),
        ("time", f"{report.seconds:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"data check: {report.root}"]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    counts = sorted(report.images_per_identity.items(), key=lambda kv: (kv[1], kv[0]))
    if len(counts) <= limit * 2:
        lines += _section("images per identity", [f"{k}: {v}" for k, v in counts], limit * 2)
    lines += _section(
        "unreadable", [f"{u['path']}: {u['reason']}" for u in report.unreadable], limit
    )
    lines += _section("non-images (left alone)", report.non_images, limit)
    lines += _section(
        f"smaller than {cfg.min_size} px",
        [f"{s['path']}: {s['width']}x{s['height']}" for s in report.small],
        limit,
    )
    lines += _section("exact duplicates", [_group_line(g) for g in report.exact_duplicates], limit)
    lines += _section("near duplicates", [_group_line(g) for g in report.near_duplicates], limit)
    lines += _section(
        f"identities with fewer than {cfg.min_images} images",
        [f"{k}: {report.images_per_identity[k]}" for k in report.few_images],
        limit,
    )
    lines.append("OK: no problems found" if report.ok else "problems found (see above)")
    return "\n".join(lines)
