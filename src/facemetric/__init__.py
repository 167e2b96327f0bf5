"""facemetric: face recognition by metric learning, from a folder of photos to a live webcam app."""

__version__ = "0.1.0"
