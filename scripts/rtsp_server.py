#!/usr/bin/python3
"""A real RTSP camera for tests and benchmarks: GStreamer's RTSP server serving a video file.

Runs on the system Python (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0; the project's
venv has no GObject bindings), so tests start it as a subprocess:

    /usr/bin/python3 scripts/rtsp_server.py --port 8554 --path /door --video clip.mp4 \
        [--user ada --password secret] [--fps 15]

The file is cut into JPEG frames once (with ffmpeg), which GStreamer loops seamlessly forever
(a container file would end and restart the stream), and re-encoded as H.264 (x264, zero
latency) as an IP camera sends it; clients of one path share one encoder. Prints
``ready rtsp://127.0.0.1:PORT/PATH`` once serving.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def frames_of(video: Path, fps: int, folder: Path) -> str:
    """``video`` as numbered JPEG frames in ``folder`` at ``fps``; the multifilesrc pattern."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(video), "-vf", f"fps={fps}",
         "-q:v", "3", str(folder / "%05d.jpg")],
        check=True,
    )  # fmt: skip
    return str(folder / "%05d.jpg")


def pipeline(pattern: str, fps: int) -> str:
    return (
        f'( multifilesrc location="{pattern}" index=1 loop=true '
        f'caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! '
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def _print_start(factory: object, media: object) -> None:
    """Print when the stream's first frame (media time 0) leaves the payloader."""
    import time

    from gi.repository import Gst

    pay = media.get_element().get_by_name("pay0")  # type: ignore[attr-defined]
    printed = []

    def probe(pad: object, info: object) -> object:
        if not printed:
            printed.append(True)
            print(f"start {time.time():.6f}", flush=True)
        return Gst.PadProbeReturn.REMOVE

    pay.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument(
        "--print-start",
        action="store_true",
        help="print 'start UNIX_TIME' when the first frame of a stream is sent (for delays)",
    )
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"rtsp_server: {args.video}: not found", file=sys.stderr)
        return 2

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    frames = tempfile.TemporaryDirectory(prefix="rtsp-frames-")
    factory.set_launch(pipeline(frames_of(args.video, args.fps, Path(frames.name)), args.fps))
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        basic = GstRtspServer.RTSPAuth.make_basic(args.user, args.password or "")
        auth.add_basic(basic, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    if args.print_start:
        factory.connect("media-configure", _print_start)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 2
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"ready rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    frames.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
