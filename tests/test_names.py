"""Person names: normal form, and the names that cannot be shown or removed safely (issue 15)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facemetric.errors import GalleryError
from facemetric.gallery.names import MAX_NAME_LENGTH, check_person_name, is_blank
from facemetric.gallery.store import GalleryStore


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ada Lovelace", "Ada Lovelace"),
        ("  Ada   Lovelace \u00a0", "Ada Lovelace"),  # runs of spaces, NBSP -> one space
        ("Jose\u0301", "Jos\u00e9"),  # decomposed -> NFC
        ("Zoë", "Zoë"),
        ("李小龙", "李小龙"),
        ("O'Brien-Smith, Jr.", "O'Brien-Smith, Jr."),
        ("x" * MAX_NAME_LENGTH, "x" * MAX_NAME_LENGTH),
    ],
)
def test_names_are_normalised(raw: str, expected: str) -> None:
    assert check_person_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "'.'"),
        ("..", "'.'"),
        (" .. ", "'.'"),
        ("a/b", "slash"),
        ("a\\b", "slash"),
        ("x" * (MAX_NAME_LENGTH + 1), "over the 100 limit"),
        ("evil\u202egnp.exe", "U+202E"),  # right-to-left override
        ("Alice\u200b", "U+200B"),  # zero-width look-alike of "Alice"
        ("Al\u200dice", "U+200D"),
        ("\ufeffBob", "U+FEFF"),
        ("Bob\u0085", "U+0085"),  # C1 control (NEL)
        ("Bob\x9b", "U+009B"),  # C1 control (CSI)
        ("tab\there", "U+0009"),
        ("new\nline", "U+000A"),
        ("del\x7f", "U+007F"),
        ("line\u2028sep", "U+2028"),
        (b"caf\xe9".decode("utf-8", "replace"), "U+FFFD"),  # invalid UTF-8, replaced
        (b"caf\xe9".decode("utf-8", "surrogateescape"), "U+DCE9"),  # invalid UTF-8, escaped
        ("\u0301abc", "combining"),
        ("\ue000", "private-use"),
        ("\U000e0001tag", "U+E0001"),  # language tag (Cf)
    ],
)
def test_unsafe_names_are_refused_naming_name_and_reason(raw: str, why: str) -> None:
    with pytest.raises(GalleryError, match="name") as info:
        check_person_name(raw)
    assert why in str(info.value)
    assert (repr(raw) if len(raw) <= MAX_NAME_LENGTH else repr(raw[:20])) in str(info.value)


@given(st.text(max_size=30))
def test_accepted_names_are_stable_and_visible(raw: str) -> None:
    try:
        name = check_person_name(raw)
    except GalleryError:
        return
    assert check_person_name(name) == name  # normal form is a fixed point
    assert unicodedata.is_normalized("NFC", name)
    assert name == name.strip() and "  " not in name and name not in (".", "..")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Cn", "Co") for c in name)
    assert not any(is_blank(c) for c in name)


def test_store_uses_the_same_rules(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g.db")
    assert store.add_person("  Jose\u0301  ").name == "Jos\u00e9"
    for bad in ("..", "Alice\u200b", "a\u202eb"):
        with pytest.raises(GalleryError, match="name"):
            store.add_person(bad)
    assert [p.name for p in store.list_people()] == ["Jos\u00e9"]
    store.close()


@pytest.mark.parametrize(
    "raw",
    [
        "\u3164",  # HANGUL FILLER (Lo): enrolled as a person who shows as nothing (issue 23)
        "\u2800",  # BRAILLE PATTERN BLANK (So)
        "\u115f\u1160",  # HANGUL CHOSEONG + JUNGSEONG FILLER
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "Alice\u3164",  # looks like "Alice"
        "Ada\u2800Lovelace",  # looks like "Ada Lovelace"
        " \u3164 ",
        "\U0001d159",  # MUSICAL SYMBOL NULL NOTEHEAD
    ],
)
def test_names_that_show_as_blank_are_refused(raw: str) -> None:
    with pytest.raises(GalleryError, match="shows as blank space") as info:
        check_person_name(raw)
    assert repr(raw) in str(info.value) and "U+" in str(info.value)


@pytest.mark.parametrize("raw", ["\u1100\u1161", "\ud55c\uad6d", "\u2764\ufe0f Ana", "\u2801"])
def test_visible_neighbours_of_blank_characters_stay_accepted(raw: str) -> None:
    """Hangul jamo and syllables, an emoji with its variation selector, a Braille letter."""
    assert check_person_name(raw)


def test_store_refuses_blank_names(tmp_path: Path) -> None:
    store = GalleryStore(tmp_path / "g.db")
    for bad in ("\u3164", "\u2800", "\u115f\u1160"):
        with pytest.raises(GalleryError, match="blank"):
            store.add_person(bad)
    assert store.list_people() == []
    store.close()
