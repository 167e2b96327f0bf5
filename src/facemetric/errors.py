"""Errors a user can cause. The CLI prints them as one line, the API as a 4xx JSON body."""

from __future__ import annotations

from pathlib import Path


class FacemetricError(Exception):
    """Base class for every error caused by user input or user data."""


class ImageReadError(FacemetricError):
    """An image file could not be decoded (missing, truncated, not an image, too large)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FaceNotFoundError(FacemetricError):
    """No face was detected where one was required."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"{path}: no face found")


class DatasetError(FacemetricError):
    """A data folder is unusable (empty, too few identities or images, bad split list)."""


class ModelError(FacemetricError):
    """A model or checkpoint is missing, unreadable or incompatible."""


class ConfigError(FacemetricError):
    """A configuration value is invalid; the message names the field."""


class GalleryError(FacemetricError):
    """A gallery request cannot be done: unknown or duplicate name, unknown face, empty input."""
