"""The match decision: is this face one of the gallery's people, and why (or why not).

One function decides for ``identify``, the API, the live page and events alike
(``Decider.decide``). A threshold calibrated per pair of faces (the model's: FAR 1e-3 per pair)
turns into a false-alarm rate per *search* that grows with every person enrolled: a stranger
searched against N people has N chances to look like someone. So the threshold here is set for
a false positive identification rate per search (FPIR, default 1%) *at the gallery's size*,
from the gallery itself, and set again whenever the gallery changes:

1. **Calibration** (``calibrate``): every reference face of person *a* (up to ``max_probes``
   of them) is scored against every other person *b* (up to ``max_people``) the way a probe is
   scored (the mean of *b*'s best ``agree`` references). Each such face is a stranger to all
   the other people, so no stranger photos are needed. Two estimates come from these scores:
   *direct* (leave one person out): the lowest threshold at which at most FPIR of these faces
   would be named under the margin rule; *tail*: a Gaussian fitted to the upper tail of all
   the (face, other person) scores (through its 90% and 99% quantiles, so the bulk does not
   pull it), at the score a stranger beats *one* person with chance
   ``p = 1 - (1 - FPIR) ** (1 / N)``, so that they beat any of the N people with chance FPIR.
   The direct one is exact but noisy for a small gallery (1% of 60 faces), the tail one stable
   but cautious (it ignores the margin): the threshold weighs the direct estimate by its
   sample, ``min(1, faces / LOO_PROBES)``, the tail by the rest. It is never below the model's
   own per-pair threshold (``floor``), which is what a gallery too small to say anything
   (< ``MIN_SCORES`` scores, or one person) gets. A gallery of more than ``max_people``
   people is sampled and relies on the tail alone. The direct estimate scores each face with
   its cohort (below); the calibration keeps the gallery's mean cohort as its zero point and
   the cohort's share (``settings.cohort`` times the direct estimate's weight).
2. **Decision** (``decide``), per face: each person's score is the mean of their best
   ``agree`` reference similarities (one look-alike photo is not enough); a person whose
   *negative* faces (corrections: "this is not Ada") are closer to the face than their best
   reference is set aside (``closer_to_negative``); the best remaining person's score is
   *adjusted* by the cohort (cohort normalisation: the share times how far the face's mean
   score over the next ``cohort_size`` people lies above the gallery's mean: a face like
   everybody is a weaker match); the person is named only when the adjusted score reaches
   the threshold and the score the floor (else ``below_threshold``) and leads the next
   person by ``margin`` (else ``ambiguous_margin``). A given threshold uses the raw score.

The calibration's maths is ``calibration.py``. Each ``Decision`` says which rule decided
(``reason``) with the figures behind it (``to_dict``). Measured on ../shared/data in
``docs/openset.md`` (``benchmarks/openset.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facemetric.errors import ConfigError

MATCH = "match"
BELOW_THRESHOLD = "below_threshold"
AMBIGUOUS_MARGIN = "ambiguous_margin"
CLOSER_TO_NEGATIVE = "closer_to_negative"
EMPTY_GALLERY = "empty_gallery"
REASONS = (MATCH, BELOW_THRESHOLD, AMBIGUOUS_MARGIN, CLOSER_TO_NEGATIVE, EMPTY_GALLERY)


@dataclass(frozen=True)
class DecisionSettings:
    """How matches are decided (the shipped defaults; ``serve``/``identify`` flags override).

    ``fpir``: stranger photos named per search; ``agree``: references averaged per person;
    ``margin``: how far the best person must lead the next; ``cohort``: how much of the
    face's likeness to the next ``cohort_size`` people is taken off its score (at full
    calibration weight; 0: none); ``use_negatives``: corrections count;
    ``max_probes``/``max_people``: the sample calibration scores (bounded work)."""

    fpir: float = 0.01
    agree: int = 2
    margin: float = 0.01
    cohort: float = 0.25
    cohort_size: int = 3
    use_negatives: bool = True
    max_probes: int = 2000
    max_people: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.fpir < 1.0:
            raise ConfigError(f"fpir: must be between 0 and 1, got {self.fpir}")
        if self.agree < 1:
            raise ConfigError(f"agree: must be at least 1, got {self.agree}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"margin: must be in [0, 1), got {self.margin}")
        if not 0.0 <= self.cohort <= 1.0:
            raise ConfigError(f"cohort: must be in [0, 1], got {self.cohort}")
        if self.cohort_size < 1:
            raise ConfigError(f"cohort_size: must be at least 1, got {self.cohort_size}")

    @property
    def candidates(self) -> int:
        """How many people ``decide`` should be given per face (the best, the cohort)."""
        return max(4, self.cohort_size + 1) if self.cohort else 4


@dataclass(frozen=True)
class Calibration:
    """The threshold a gallery of ``people`` people gets for ``fpir``, and how it was found."""

    threshold: float
    fpir: float
    people: int
    source: str  # gallery (fitted on its own references) | floor (too small: the model's) | given
    floor: float
    scores: int = 0  # impostor scores it was fitted on
    fitted: float | None = None  # the gallery's own estimate before the floor
    generation: int = -1  # the gallery generation it was computed for
    tail: float | None = None  # the Gaussian tail's threshold
    direct: float | None = None  # the leave-one-person-out threshold
    weight: float = 0.0  # how much the direct estimate counts
    cohort: float = 0.0  # how much of the cohort's likeness is taken off a score
    cohort_mean: float = 0.0  # the gallery's own mean cohort likeness (the zero point)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 4),
            "fpir": self.fpir,
            "people": self.people,
            "source": self.source,
            "floor": round(self.floor, 4),
            "scores": self.scores,
            "fitted": None if self.fitted is None else round(self.fitted, 4),
            "tail": None if self.tail is None else round(self.tail, 4),
            "direct": None if self.direct is None else round(self.direct, 4),
            "weight": round(self.weight, 3),
            "cohort": round(self.cohort, 4),
            "cohort_mean": round(self.cohort_mean, 4),
        }


@dataclass(frozen=True)
class Decision:
    """Who a face is (``identity`` None: nobody) and why."""

    identity: str | None
    reason: str
    score: float  # the named (or best eligible) person's score
    threshold: float
    nearest: str | None  # the best person before any rule
    second: str | None = None
    second_score: float | None = None
    margin: float | None = None  # score - second_score
    margin_needed: float = 0.0
    vetoed: tuple[str, ...] = ()  # people set aside: closer to their negatives
    negative_similarity: float | None = None  # of the nearest person's closest negative
    calibration: str = "floor"
    adjusted: float | None = None  # the score less the cohort's share, set against threshold
    cohort: float | None = None  # the face's mean score over the next people (the cohort)

    @property
    def is_match(self) -> bool:
        return self.reason == MATCH

    @property
    def compared(self) -> float:
        """The score the threshold was compared with: the cohort-adjusted score when the
        calibration adjusts one, else the person's score (what every output shows as "score")."""
        return float(self.score if self.adjusted is None else self.adjusted)

    def explain(self) -> str:
        """The decision in one phrase, the same in the CLI's text, CSV and the pages: the reason,
        then the figures the deciding rule compared (4 decimals)."""
        s, t = self.compared, self.threshold
        adjusted = ""
        if self.adjusted is not None and abs(self.adjusted - self.score) >= 5e-5:
            adjusted = f" (similarity {self.score:.4f} less {self.score - self.adjusted:.4f}: "
            adjusted += "the face is also like other people)"
        if self.reason == MATCH:
            return f"match: score {s:.4f}{adjusted} >= threshold {t:.4f}"
        if self.reason == BELOW_THRESHOLD and s < t:
            return f"below_threshold: score {s:.4f}{adjusted} < threshold {t:.4f}"
        if self.reason == BELOW_THRESHOLD:  # the calibration's floor on the plain similarity
            return f"below_threshold: similarity {self.score:.4f} under the model's floor"
        if self.reason == AMBIGUOUS_MARGIN:
            lead = 0.0 if self.margin is None else self.margin
            return (
                f"ambiguous_margin: score {s:.4f} >= threshold {t:.4f}, but it leads "
                f"{self.second} by {lead:.4f} < margin {self.margin_needed:.4f}"
            )
        if self.reason == CLOSER_TO_NEGATIVE:
            neg = "" if self.negative_similarity is None else f" ({self.negative_similarity:.4f})"
            return f"closer_to_negative: closer to a face marked not {self.nearest}{neg}"
        return f"{self.reason}: nobody to compare with"

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), 4)

        return {
            "is_match": self.is_match,
            "reason": self.reason,
            "identity": self.identity,
            "nearest": self.nearest,
            "score": r(self.score),
            "threshold": r(self.threshold),
            "second": self.second,
            "second_score": r(self.second_score),
            "margin": r(self.margin),
            "margin_needed": r(self.margin_needed),
            "vetoed": list(self.vetoed),
            "negative_similarity": r(self.negative_similarity),
            "calibration": self.calibration,
            "adjusted": r(self.adjusted),
            "cohort": r(self.cohort),
            "compared": r(self.compared),  # the score set against "threshold"
            "explanation": self.explain(),
        }


def person_score(sims: np.ndarray, agree: int) -> float:
    """A person's score from their references' similarities: the mean of the best ``agree``."""
    s = np.sort(np.asarray(sims, np.float64))[::-1][:agree]
    return float(s.mean()) if s.size else -1.0


def adjust(score: float | np.ndarray, cohort: Any, weight: float, mean: float) -> Any:
    """``score`` less ``weight`` times the cohort's likeness above the gallery's ``mean``."""
    if weight == 0.0:
        return score
    return score - weight * (np.where(np.isnan(cohort), mean, cohort) - mean)


@dataclass
class Decider:
    """Decides faces against one gallery's calibration (``threshold`` given: that one instead)."""

    calibration: Calibration
    settings: DecisionSettings = field(default_factory=DecisionSettings)
    threshold: float | None = None  # an explicit override (--threshold)

    @property
    def active_threshold(self) -> float:
        return float(self.threshold) if self.threshold is not None else self.calibration.threshold

    def decide(
        self,
        scores: Sequence[tuple[str, float]],
        negatives: Mapping[str, float] | None = None,
        best_reference: Mapping[str, float] | None = None,
    ) -> Decision:
        """Decide from each person's score (best first: ``(name, score)``), the similarity of
        each person's closest negative face (``negatives``) and of their closest reference
        (``best_reference``; default: the score)."""
        t = self.active_threshold
        source = "given" if self.threshold is not None else self.calibration.source
        if not scores:
            return Decision(None, EMPTY_GALLERY, -1.0, t, None, calibration=source)
        ranked = sorted(scores, key=lambda c: -c[1])
        nearest = ranked[0][0]
        negatives = negatives or {}
        best_reference = best_reference or {}
        vetoed: list[str] = []
        eligible = []
        for name, score in ranked:
            neg = negatives.get(name)
            if (
                self.settings.use_negatives
                and neg is not None
                and neg >= best_reference.get(name, score)
            ):
                vetoed.append(name)
                continue
            eligible.append((name, score))
        neg_near = negatives.get(nearest)
        if not eligible:
            return Decision(
                None,
                CLOSER_TO_NEGATIVE,
                ranked[0][1],
                t,
                nearest,
                vetoed=tuple(vetoed),
                negative_similarity=neg_near,
                calibration=source,
            )
        name, score = eligible[0]
        second, second_score = eligible[1] if len(eligible) > 1 else (None, None)
        margin = None if second_score is None else score - second_score
        need = self.settings.margin
        rest = [s for _, s in eligible[1 : 1 + self.settings.cohort_size]]
        cohort = float(np.mean(rest)) if rest else None
        cal = self.calibration
        share = cal.cohort if self.threshold is None else 0.0
        adjusted = float(
            adjust(score, np.nan if cohort is None else cohort, share, cal.cohort_mean)
        )
        if adjusted < t or (share and score < cal.floor):
            reason = CLOSER_TO_NEGATIVE if vetoed and vetoed[0] == nearest else BELOW_THRESHOLD
        elif margin is not None and margin < need:
            reason = AMBIGUOUS_MARGIN
        else:
            reason = MATCH
        return Decision(
            name if reason == MATCH else None,
            reason,
            score,
            t,
            nearest,
            second,
            second_score,
            margin,
            need,
            tuple(vetoed),
            neg_near,
            source,
            adjusted,
            cohort,
        )
