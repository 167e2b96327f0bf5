"""The recognize stage: frame -> faces -> embeddings -> decided matches.

``recognizer.py`` (one ``Recognizer`` for the CLI, the web app and the cameras), ``decision.py``
(the one open-set decision and its calibration), ``tracking.py`` (tracks that follow a face and
are decided on their evidence), ``photos.py`` (``facemetric identify`` on photo files)."""

from facemetric.recognize.decision import Decider, Decision, DecisionSettings
from facemetric.recognize.recognizer import Candidate, EnrolResult, FaceMatch, Recognizer

__all__ = [
    "Candidate",
    "Decider",
    "Decision",
    "DecisionSettings",
    "EnrolResult",
    "FaceMatch",
    "Recognizer",
]
