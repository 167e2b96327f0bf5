"""Person names: one normal form, and refusal of names that cannot be shown and removed safely.

A name is shown on pages, typed on the command line and put in URL paths (``DELETE
/api/people/{name}``), so it must look like what it is and survive each of those. Names are
normalised to NFC with runs of spaces made one plain space, and refused when empty, too long, a
path part (``.``, ``..``, slashes), or holding a character that is invisible or changes how text
around it is shown: controls (C0, DEL, C1), format characters (bidi overrides, zero-width
spaces and joiners, BOM), line separators, unassigned code points, surrogates (undecodable bytes)
and U+FFFD (bytes that were not valid UTF-8).

Categories do not say how a character renders: Hangul fillers are letters (Lo) and the blank
Braille pattern a symbol (So), yet both show as empty space. So the rule also goes by how a name
shows: characters that render as blank space without being spaces are refused anywhere (a name
holding one looks like another name, or like nothing). What is left starts with a character that
shows: not a space (trimmed), not a control or format character, not a mark.
"""

from __future__ import annotations

import re
import unicodedata

from facemetric.errors import GalleryError

MAX_NAME_LENGTH = 100
_SPACES = re.compile(r"\s+")
# General categories refused anywhere in a name (see the module docstring).
_REFUSED = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidi override, zero-width space or joiner)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate (bytes that are not valid UTF-8)",
    "Cn": "an unassigned character",
    "Co": "a private-use character",
}
# Characters that show as blank space (or nothing) although their category says letter, symbol
# or mark; Unicode's Default_Ignorable_Code_Point fillers and the blank glyphs of symbol blocks.
_BLANK = frozenset(
    {
        "\u034f",  # COMBINING GRAPHEME JOINER
        "\u115f",  # HANGUL CHOSEONG FILLER
        "\u1160",  # HANGUL JUNGSEONG FILLER
        "\u17b4",  # KHMER VOWEL INHERENT AQ
        "\u17b5",  # KHMER VOWEL INHERENT AA
        "\u2800",  # BRAILLE PATTERN BLANK
        "\u3164",  # HANGUL FILLER
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\U00016fe4",  # KHITAN SMALL SCRIPT FILLER
        "\U0001d159",  # MUSICAL SYMBOL NULL NOTEHEAD
    }
)


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '(no name)')}"


def check_person_name(name: str) -> str:
    """``name`` in normal form (NFC, trimmed, single spaces); ``GalleryError`` saying which name
    and why when it cannot be used."""
    if not isinstance(name, str):
        raise GalleryError(f"name: {name!r} must be text")
    for char in name:  # before any normalisation: the raw offending character is what to name
        category = unicodedata.category(char)
        if category in _REFUSED or char == "\ufffd":
            why = _REFUSED.get(category, "the replacement character (bytes that were not UTF-8)")
            raise GalleryError(f"name {name!r}: contains {_describe(char)}, {why}")
        if char in _BLANK:
            raise GalleryError(
                f"name {name!r}: contains {_describe(char)}, which shows as blank space"
            )
    cleaned = _SPACES.sub(" ", unicodedata.normalize("NFC", name)).strip()
    if not cleaned:
        raise GalleryError(f"name {name!r}: must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise GalleryError(
            f"name {name[:20]!r}...: {len(cleaned)} characters, over the {MAX_NAME_LENGTH} limit"
        )
    if cleaned in (".", "..") or "/" in cleaned or "\\" in cleaned:
        raise GalleryError(
            f"name {name!r}: must not be '.' or '..' or hold a slash (it is part of URLs)"
        )
    if unicodedata.category(cleaned[0]) in ("Mn", "Me"):
        raise GalleryError(
            f"name {name!r}: starts with the combining mark {_describe(cleaned[0])}, "
            "which has no letter to sit on"
        )
    return cleaned


def is_blank(char: str) -> bool:
    """Whether ``char`` renders as blank space without being a space (Hangul fillers, ...)."""
    return char in _BLANK
