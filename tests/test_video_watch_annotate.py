"""``watch --annotate`` on a file keeps the file's frame rate (issue 29: a 15 frames/s clip came
out at 5, the recognition budget), with the labels carried between recognised frames. Runs
anywhere: a clip made with ffmpeg from scikit-image's astronaut, a tiny model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facemetric.cli import main
from webutil import astronaut, frame_640x480

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def test_annotated_video_has_every_frame_at_the_input_rate_with_labels_carried(
    tmp_path: Path, untrained_tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import av

    png = tmp_path / "astronaut.png"
    Image.fromarray(frame_640x480(astronaut())).save(png)
    (tmp_path / "people" / "astronaut").mkdir(parents=True)
    shutil.copy(png, tmp_path / "people" / "astronaut" / "a.png")
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "15", "-t", "2", "-i",
         str(png), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    db, model = str(tmp_path / "g.db"), str(untrained_tiny_checkpoint)
    assert main(["gallery", "build", str(tmp_path / "people"), "--db", db, "--model", model]) == 0
    out = tmp_path / "labelled.mp4"
    code = main(["watch", str(clip), "--db", db, "--model", model, "--fps", "5", "--quiet",
                 "--annotate", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with av.open(str(clip)) as source:
        plain = [f.to_ndarray(format="rgb24").astype(np.int16) for f in source.decode(video=0)]
    with av.open(str(out)) as written:
        stream = written.streams.video[0]
        assert float(stream.average_rate) == pytest.approx(15.0, abs=0.01)
        labelled = [f.to_ndarray(format="rgb24").astype(np.int16) for f in written.decode(video=0)]
    assert len(labelled) == len(plain) == 30
    # Every frame carries the box and label (recognised 5 a second, drawn on all 15): each
    # differs from its plain frame by far more than the codec's noise.
    changed = [
        float((np.abs(a - b).max(axis=2) > 60).mean()) for a, b in zip(labelled, plain, strict=True)
    ]
    assert min(changed) > 0.002, changed
