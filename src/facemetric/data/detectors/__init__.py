"""Built-in face detectors; importing this package registers them (the models load lazily)."""

from facemetric.data.detectors import mtcnn, retinaface, yunet

__all__ = ["mtcnn", "retinaface", "yunet"]
