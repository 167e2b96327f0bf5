"""What a training run is given (issue 14 items 3 and 7): photos are refused where crops are
expected, and the warnings about validation name the real problem (one person, not images)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_set
from facemetric.cli import main
from facemetric.data.split import SplitConfig, split_dataset
from facemetric.errors import DatasetError
from facemetric.train import TrainConfig
from facemetric.train.setup import prepare_data


def squares(root: Path, people: int, per: int = 3, size: int = 32) -> Path:
    """Square same-size images, as crops are (no prepare.json)."""
    rng = np.random.default_rng(0)
    for i in range(people):
        (root / f"p{i}").mkdir(parents=True)
        for j in range(per):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"p{i}" / f"{j}.png")
    return root


def config(data: Path, **kw: object) -> TrainConfig:
    return TrainConfig(data=(str(data),), backbone="tiny", **kw)  # type: ignore[arg-type]


def test_photos_are_refused_for_training(tmp_path: Path, capsys) -> None:
    """`train photos` on raw photos trained without a word."""
    wild = shared_set("celeba-wild")
    photos = tmp_path / "photos"
    photos.mkdir()
    for person in sorted(wild.iterdir())[:4]:
        (photos / person.name).symlink_to(person, target_is_directory=True)
    with pytest.raises(DatasetError) as err:
        prepare_data(config(photos))
    msg = str(err.value)
    assert msg.startswith(f"{photos} holds photos, not aligned face crops: ")
    assert "are not square" in msg and "no prepare.json" in msg
    assert f"facemetric data align {photos} CROPS" in msg
    # the CLI says it in one line, and the flag lets a user insist
    argv = ["train", str(photos), "--backbone", "tiny", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.startswith("facemetric: error: ") and len(err_line.splitlines()) == 1
    assert "--no-check-crops" in err_line
    assert prepare_data(config(photos, check_crops=False)).train.identities


def test_orl_faces_are_not_crops_but_may_be_trained_on_when_asked(tmp_path: Path) -> None:
    orl = shared_set("orl")  # cropped faces, 92x112: not square
    with pytest.raises(DatasetError, match="not square"):
        prepare_data(config(orl))
    data = prepare_data(config(orl, check_crops=False))
    assert len(data.train.identities) + len(data.val.identities) == 40  # type: ignore[union-attr]


def test_crops_pass_sizes_that_vary_do_not(tmp_path: Path) -> None:
    crops = squares(tmp_path / "crops", 6)
    assert len(prepare_data(config(crops)).train.identities) == 4  # 2 held out for val
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(crops / "p0" / "big.png")
    with pytest.raises(DatasetError, match=r"its images come in 2 sizes \(32x32, 48x48\)"):
        prepare_data(config(crops))
    (crops / "prepare.json").write_text('{"template": "arcface", "size": 32}')
    assert prepare_data(config(crops)).train  # made by data align: taken at its word


def test_one_person_in_val_is_named_as_the_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """8 people, the default split: one person in val; the log blamed "too few images"."""
    crops = squares(tmp_path / "crops", 8)
    split_dataset(crops, SplitConfig(), out=tmp_path / "split")
    with caplog.at_level(logging.WARNING, logger="facemetric"):
        data = prepare_data(config(crops, split=str(tmp_path / "split")))
    assert data.val is None
    assert "only 1 identity in val (" in caplog.text
    assert "validation needs at least 2 people" in caplog.text
    assert "with 8 people use facemetric data split --val 0.25" in caplog.text
    assert "images" not in caplog.text
    # two val people but only one of them with two images: that is what is said
    caplog.clear()
    split_dataset(crops, SplitConfig(val=0.25), out=tmp_path / "split2")
    val_people = sorted(
        {p.split("/")[0] for p in (tmp_path / "split2/val.txt").read_text().split()}
    )
    for extra in sorted((crops / val_people[0]).iterdir())[1:]:
        extra.unlink()
    split_dataset(crops, SplitConfig(val=0.25), out=tmp_path / "split2")
    with caplog.at_level(logging.WARNING, logger="facemetric"):
        data = prepare_data(config(crops, split=str(tmp_path / "split2"), drop_singletons=True))
    assert data.val is None
    assert f"1 of the 2 validation people have 2 or more images ({val_people[1]})" in caplog.text


def test_too_few_people_to_hold_out_says_how_many_are_needed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crops = squares(tmp_path / "crops", 5)
    with caplog.at_level(logging.WARNING, logger="facemetric"):
        data = prepare_data(config(crops))
    assert data.val is None
    assert "only 5 people: holding 2 out for validation would leave 3 to train on" in caplog.text
    assert "at least 6 people are needed" in caplog.text


def test_dropping_singletons_down_to_one_person_says_so(tmp_path: Path) -> None:
    crops = squares(tmp_path / "crops", 2)
    for extra in sorted((crops / "p1").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DatasetError) as err:
        prepare_data(config(crops, drop_singletons=True, val_fraction=0.0))
    assert str(err.value) == (
        f"{crops}: only one identity with images (p0) once the 1 with a single image were "
        "dropped; a triplet needs a negative from another person: training needs at least 2 "
        "people"
    )
