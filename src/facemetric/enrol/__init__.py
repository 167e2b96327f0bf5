"""The enrol stage: people in and out of a gallery.

``build.py`` (``gallery build`` / ``gallery add`` from photo folders), ``screen.py`` (the quality
and consistency checks a reference face passes), ``correct.py`` ("this face is Ada" / "not
Ada" from a photo or a tracked face), ``known.py`` (the gallery cached from a folder of known
people, kept in step with it)."""
