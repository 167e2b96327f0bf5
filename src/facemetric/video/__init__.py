"""Server-side video: cameras (RTSP, HTTP MJPEG, files, devices) read with PyAV, recognised
frame by frame, their tracks turned into events (``facemetric.events.builder``)."""

from facemetric.video.sources import Camera, load_cameras, parse_camera

__all__ = ["Camera", "load_cameras", "parse_camera"]
