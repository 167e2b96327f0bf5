"""Evaluation protocols: verification pairs files and probe/gallery splits of a folder.

Two pairs formats are read, detected from the first line:

- LFW ``pairs.txt``: a header ``N_FOLDS N`` (``10 300``) or ``N``, then per fold N matched lines
  ``name n1 n2`` and N mismatched lines ``name1 n1 name2 n2``; image ``name/name_%04d.jpg``.
  Fields are separated by tabs (as LFW distributes the file) or spaces.
- TSV ``fold same image1 image2`` with a header line (CFP's ``pairs_FF.tsv``/``pairs_FP.tsv``);
  image paths relative to the data root.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from facemetric.data.split import list_identity_images
from facemetric.errors import ConfigError, DatasetError

TSV_HEADER = ("fold", "same", "image1", "image2")
LFW_IMAGE = "{name}/{name}_{n:04d}{ext}"
MISSING_SHOWN = 10  # names listed in a missing-images error before "... and N more"


@dataclass(frozen=True)
class Pair:
    image1: str  # relative to the data root, forward slashes
    image2: str
    same: bool
    fold: int


@dataclass
class PairsProtocol:
    """Verification pairs read from ``path`` (format ``lfw`` or ``tsv``)."""

    pairs: list[Pair]
    path: Path
    format: str

    @property
    def images(self) -> list[str]:
        """Every distinct image the pairs use, sorted."""
        return sorted({p.image1 for p in self.pairs} | {p.image2 for p in self.pairs})

    @property
    def n_folds(self) -> int:
        return len({p.fold for p in self.pairs})

    def fingerprint(self) -> str:
        """sha256 of the pairs file's bytes (to tell whether a stored evaluation is stale)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _bad(path: Path, lineno: int, why: str) -> DatasetError:
    return DatasetError(f"{path}:{lineno}: {why}")


def _parse_int(token: str, path: Path, lineno: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise _bad(path, lineno, f"{what} {token!r} is not an integer") from None


def _parse_tsv(lines: list[str], path: Path) -> list[Pair]:
    pairs = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.rstrip("\r\n").split("\t")
        if len(cols) != 4:
            raise _bad(path, lineno, f"expected 4 tab-separated columns, got {len(cols)}")
        fold = _parse_int(cols[0], path, lineno, "fold")
        same = cols[1].strip().lower()
        if same not in ("0", "1", "true", "false"):
            raise _bad(path, lineno, f"same={cols[1]!r}: expected 0 or 1")
        pairs.append(Pair(cols[2].strip(), cols[3].strip(), same in ("1", "true"), fold))
    return pairs


def _parse_lfw(lines: list[str], path: Path, ext: str) -> list[Pair]:
    header = lines[0].split()
    if len(header) == 1:
        n_folds, per_fold = 1, _parse_int(header[0], path, 1, "pair count")
    else:
        n_folds = _parse_int(header[0], path, 1, "fold count")
        per_fold = _parse_int(header[1], path, 1, "pair count")
    body = [(i, ln.split()) for i, ln in enumerate(lines[1:], start=2) if ln.strip()]
    if len(body) != 2 * n_folds * per_fold:
        raise _bad(
            path,
            1,
            f"header promises {n_folds} folds x 2 x {per_fold} = {2 * n_folds * per_fold} "
            f"pairs, the file has {len(body)}",
        )
    pairs = []
    for k, (lineno, tok) in enumerate(body):
        fold = k // (2 * per_fold) + 1
        if len(tok) == 3:
            name, a, b = tok
            n1 = _parse_int(a, path, lineno, "image number")
            n2 = _parse_int(b, path, lineno, "image number")
            im1, im2 = (
                LFW_IMAGE.format(name=name, n=n1, ext=ext),
                LFW_IMAGE.format(name=name, n=n2, ext=ext),
            )
            pairs.append(Pair(im1, im2, True, fold))
        elif len(tok) == 4:
            n1 = _parse_int(tok[1], path, lineno, "image number")
            n2 = _parse_int(tok[3], path, lineno, "image number")
            im1 = LFW_IMAGE.format(name=tok[0], n=n1, ext=ext)
            im2 = LFW_IMAGE.format(name=tok[2], n=n2, ext=ext)
            pairs.append(Pair(im1, im2, False, fold))
        else:
            raise _bad(path, lineno, f"expected 'name n1 n2' or 'name1 n1 name2 n2': {tok}")
    return pairs


def read_pairs(path: str | Path, lfw_ext: str = ".jpg") -> PairsProtocol:
    """Parse a pairs file in either format; ``DatasetError`` names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: pairs file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise DatasetError(f"{path}: empty pairs file")
    header = lines[0].split()  # any whitespace: LFW's own pairs.txt separates with tabs
    if header and len(header) <= 2 and all(t.isdigit() for t in header):
        pairs, fmt = _parse_lfw(lines, path, lfw_ext), "lfw"
    elif "\t" in lines[0] or [t.lower() for t in header[:2]] == list(TSV_HEADER[:2]):
        if tuple(c.strip().lower() for c in lines[0].split("\t")) != TSV_HEADER:
            raise _bad(path, 1, f"expected the header {' '.join(TSV_HEADER)!r} (tab-separated)")
        pairs, fmt = _parse_tsv(lines, path), "tsv"
    else:
        raise _bad(
            path,
            1,
            "unknown pairs format: expected an LFW header like '10 300' or the tsv "
            f"header {' '.join(TSV_HEADER)!r}",
        )
    if not pairs:
        raise DatasetError(f"{path}: no pairs")
    return PairsProtocol(pairs=pairs, path=path, format=fmt)


def missing_images(images: list[str], root: str | Path) -> list[str]:
    """The relative image paths that are not files under ``root``."""
    root = Path(root)
    return [im for im in images if not (root / im).is_file()]


def describe_missing(missing: list[str], root: str | Path, source: str) -> str:
    """One line naming how many and which images are missing (first few)."""
    shown = ", ".join(missing[:MISSING_SHOWN])
    more = f" ... and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
    return f"{len(missing)} image(s) named in {source} are missing under {root}: {shown}{more}"


def check_pairs_images(protocol: PairsProtocol, root: str | Path) -> None:
    """Raise ``DatasetError`` listing the missing files when any pair image is absent."""
    missing = missing_images(protocol.images, root)
    if missing:
        raise DatasetError(describe_missing(missing, root, str(protocol.path)))


def subset_pairs(protocol: PairsProtocol, max_pairs: int, seed: int = 0) -> PairsProtocol:
    """At most ``max_pairs`` pairs, drawn evenly from every (fold, same) group, seeded."""
    if max_pairs <= 0:
        raise ConfigError(f"max_pairs={max_pairs}: must be positive")
    if max_pairs >= len(protocol.pairs):
        return protocol
    groups: dict[tuple[int, bool], list[Pair]] = defaultdict(list)
    for p in protocol.pairs:
        groups[(p.fold, p.same)].append(p)
    rng = random.Random(seed)
    per_group = max(1, max_pairs // len(groups))
    chosen: list[Pair] = []
    for key in sorted(groups):
        items = groups[key]
        chosen += rng.sample(items, min(per_group, len(items)))
    keep = set(map(id, chosen))
    pairs = [p for p in protocol.pairs if id(p) in keep]  # original order
    return PairsProtocol(pairs=pairs, path=protocol.path, format=protocol.format)


@dataclass
class PairsSummary:
    """What ``make_pairs`` made: the pairs and how many people and folds they come from."""

    pairs: list[Pair]
    people: int
    folds: int

    @property
    def genuine(self) -> int:
        return sum(p.same for p in self.pairs)

    @property
    def impostor(self) -> int:
        return len(self.pairs) - self.genuine


def _share(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; even when all are 0)."""
    if not weights:
        return []
    w = weights if sum(weights) else [1] * len(weights)
    exact = [total * x / sum(w) for x in w]
    out = [int(e) for e in exact]
    by_rest = sorted(range(len(w)), key=lambda i: (out[i] - exact[i], i))
    for i in by_rest[: total - sum(out)]:
        out[i] += 1
    return out


def _allot(total: int, weights: list[int], caps: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, none above its cap: what a full group
    cannot take goes to the others in proportion to the room they have left."""
    out = [min(n, c) for n, c in zip(_share(total, weights), caps, strict=True)]
    while (left := total - sum(out)) > 0 and any(o < c for o, c in zip(out, caps, strict=True)):
        room = [c - o for o, c in zip(out, caps, strict=True)]
        extra = _share(min(left, sum(room)), room)
        out = [min(o + e, c) for o, e, c in zip(out, extra, caps, strict=True)]
    return out


def _impostor_count(people: dict[str, list[str]]) -> int:
    """How many pairs of images of two different people there are."""
    sizes = [len(v) for v in people.values()]
    return (sum(sizes) ** 2 - sum(s * s for s in sizes)) // 2


def _impostors(people: dict[str, list[str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """``n`` distinct pairs of images of two different people (at most every such pair)."""
    names = sorted(people)
    possible = _impostor_count(people)
    if n >= possible // 2:  # dense: list them all and draw
        every = [
            (a, b)
            for i, x in enumerate(names)
            for y in names[i + 1 :]
            for a in people[x]
            for b in people[y]
        ]
        return rng.sample(every, min(n, len(every)))
    images = [(k, im) for k in names for im in people[k]]
    chosen: set[tuple[str, str]] = set()
    out: list[tuple[str, str]] = []
    while len(out) < n:  # sparse: draw and redraw the rare repeat
        (p1, a), (p2, b) = rng.sample(images, 2)
        pair = (min(a, b), max(a, b))
        if p1 != p2 and pair not in chosen:
            chosen.add(pair)
            out.append(pair)
    return out


def make_pairs(
    root: str | Path,
    genuine: int | None = None,
    impostor: int | None = None,
    seed: int = 0,
    folds: int = 10,
    people: dict[str, list[str]] | None = None,
) -> PairsSummary:
    """Verification pairs of the people in ``root/person/*``, reproducible for a ``seed``.

    ``genuine``: how many same-person pairs (None: every one); ``impostor``: how many pairs of
    two different people (None: as many as genuine pairs; fewer when fewer exist). Folds are
    assigned by person, as in LFW, so a person's pairs, genuine and impostor, all lie in one fold
    and k-fold accuracy never fits a threshold on the people it is tested on; with fewer than two
    people per fold there are fewer folds. ``people`` ({person: [relative paths]}) replaces the
    folder listing (a split's list, for one).
    """
    if folds < 1:
        raise ConfigError(f"folds={folds}: must be at least 1")
    for name, value in (("genuine", genuine), ("impostor", impostor)):
        if value is not None and value < 0:
            raise ConfigError(f"{name}={value}: must be >= 0")
    people = list_identity_images(root) if people is None else people
    if len(people) < 2:
        raise DatasetError(
            f"{root}: {len(people)} person folder(s) with images; pairs need at least 2 people"
        )
    rng = random.Random(seed)
    order = sorted(people, key=lambda k: hashlib.sha256(f"{seed}\0{k}".encode()).digest())
    n_folds = max(1, min(folds, len(order) // 2))
    fold_people = [sorted(order[f::n_folds]) for f in range(n_folds)]  # >= 2 people each
    same = [
        (f + 1, a, b)
        for f, names in enumerate(fold_people)
        for k in names
        for i, a in enumerate(people[k])
        for b in people[k][i + 1 :]
    ]
    if genuine is not None and genuine < len(same):
        keep = sorted(rng.sample(range(len(same)), genuine))
        same = [same[i] for i in keep]
    per_fold = [sum(1 for f, _, _ in same if f == k + 1) for k in range(n_folds)]
    n_impostor = len(same) if impostor is None else impostor
    caps = [_impostor_count(_only(people, names)) for names in fold_people]
    pairs: list[Pair] = []
    for f, (names, n) in enumerate(
        zip(fold_people, _allot(n_impostor, per_fold, caps), strict=True)
    ):
        fold = [Pair(a, b, True, g) for g, a, b in same if g == f + 1]
        fold += [Pair(a, b, False, f + 1) for a, b in _impostors(_only(people, names), n, rng)]
        rng.shuffle(fold)  # mixed, so that cutting one fold into blocks still gives both kinds
        pairs += fold
    if not pairs:
        raise DatasetError(f"{root}: no pairs to make (every person has a single image?)")
    return PairsSummary(pairs=pairs, people=len(people), folds=n_folds)


def _only(people: dict[str, list[str]], names: list[str]) -> dict[str, list[str]]:
    return {k: people[k] for k in names}


def write_pairs(pairs: list[Pair], path: str | Path) -> Path:
    """Write pairs as a tsv ``fold same image1 image2`` file (what ``read_pairs`` reads)."""
    path = Path(path)
    lines = ["\t".join(TSV_HEADER)]
    lines += [f"{p.fold}\t{int(p.same)}\t{p.image1}\t{p.image2}" for p in pairs]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot write the pairs file there ({exc})") from exc
    return path


@dataclass
class IdentificationSplit:
    """Gallery (enrolled images), mated probes and non-mated probes (strangers) of a folder."""

    gallery: list[str] = field(default_factory=list)
    mated: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)  # identities
    not_enrolled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # identities with too few images

    @property
    def images(self) -> list[str]:
        return sorted(set(self.gallery) | set(self.mated) | set(self.strangers))


def identity_of(path: str) -> str:
    """The identity of a relative path ``person/image``."""
    return path.split("/", 1)[0]


def split_probe_gallery(
    root: str | Path,
    enrol: int = 1,
    stranger_fraction: float = 0.5,
    seed: int = 0,
    people: dict[str, list[str]] | None = None,
) -> IdentificationSplit:
    """Per identity the first ``enrol`` images (sorted names) enrol, the rest are probes.

    A seeded ``stranger_fraction`` of the identities is not enrolled at all: all their images are
    non-mated probes for open-set numbers. Identities chosen for enrolment with no image left to
    probe are skipped (and listed). ``people`` ({person: [relative paths]}, a split's test list
    for one) replaces the listing of ``root``.
    """
    if enrol < 1:
        raise ConfigError(f"enrol={enrol}: at least one image per identity must enrol")
    if not 0.0 <= stranger_fraction < 1.0:
        raise ConfigError(f"stranger_fraction={stranger_fraction}: must be in [0, 1)")
    people = list_identity_images(root) if people is None else people
    names = sorted(people)
    rng = random.Random(seed)
    n_strangers = round(stranger_fraction * len(names))
    strangers = set(rng.sample(names, n_strangers))
    split = IdentificationSplit()
    for name in names:
        imgs = people[name]
        if name in strangers:
            split.not_enrolled.append(name)
            split.strangers += imgs
        elif len(imgs) <= enrol:
            split.skipped.append(name)
        else:
            split.enrolled.append(name)
            split.gallery += imgs[:enrol]
            split.mated += imgs[enrol:]
    if len(split.enrolled) < 2:
        raise DatasetError(
            f"{root}: {len(split.enrolled)} identities with more than {enrol} image(s) to "
            "enrol; identification needs at least 2"
        )
    return split
