"""Names that look alike: "Аnn Lee" with a Cyrillic А shows exactly as "Ann Lee".

A name's *skeleton* (after Unicode TS #39) is what it looks like: compatibility forms folded
(NFKD: fullwidth letters, ligatures), then each character replaced by the Latin one it is drawn
like. Two names with the same skeleton cannot both be in the gallery. The table holds the
Latin, Cyrillic and Greek look-alikes (the letters a keyboard layout switch or a spoofer
brings), plus the Latin-only ones TS #39 lists: I, 1 and | as l, 0 as O, rn as m.
"""

from __future__ import annotations

import unicodedata

_LOOKS_LIKE = {
    # Cyrillic capitals and small letters drawn as Latin ones
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "Ү": "Y", "І": "l", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q",
    "Ԝ": "W", "Ӏ": "l", "Ѵ": "V", "Ь": "b",
    "а": "a", "в": "B", "е": "e", "к": "K", "м": "M", "н": "H", "о": "o", "р": "p", "с": "c",
    "т": "T", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ӏ": "l", "һ": "h", "ѵ": "v", "ү": "y", "ь": "b",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "l", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "ν": "v", "ι": "i", "α": "a",
    "ρ": "p", "τ": "T", "υ": "u", "κ": "K", "χ": "x",
    # Latin and digits (TS #39)
    "I": "l", "1": "l", "|": "l", "0": "O", "ı": "i",
}  # fmt: skip
_PAIRS = (("rn", "m"), ("vv", "w"))


def skeleton(name: str) -> str:
    """What ``name`` looks like, for comparing names (not for showing)."""
    folded = unicodedata.normalize("NFKD", name)
    drawn = "".join(_LOOKS_LIKE.get(c, c) for c in folded)
    for pair, single in _PAIRS:
        drawn = drawn.replace(pair, single)
    return unicodedata.normalize("NFC", drawn)


def look_alike(name: str, others: list[str]) -> str | None:
    """The first of ``others`` (another name) that looks like ``name``, or None."""
    mine = skeleton(name)
    for other in others:
        if other != name and skeleton(other) == mine:
            return other
    return None
