"""Faces grouped into people with no gallery: clustering (``core``), its quality figures
(``metrics``) and the photo-library job behind ``facemetric cluster`` (``library``)."""
