"""Person names: one normal form, and refusal of names that cannot be shown and removed safely.

A name is shown on pages, typed on the command line and put in URL paths (``DELETE
/api/people/{name}``), so it must look like what it is and survive each of those. Names are
normalised to NFC with runs of spaces made one plain space, and refused when empty, too long, a
path part (``.``, ``..``, slashes), or holding a character that is invisible or changes how text
around it is shown: controls (C0, DEL, C1), format characters (bidi overrides, zero-width
spaces and joiners, BOM), line separators, unassigned code points, surrogates (undecodable bytes)
and U+FFFD (bytes that were not valid UTF-8).
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
