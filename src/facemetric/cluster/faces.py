"""One face of a sorted library and the group it went to: what ``cluster.library`` makes and
``cluster.folders`` writes out (on its own so neither imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClusteredFace:
    """One face of one photo and the group it went to."""

    image: str
    face: int  # index of the face within its photo, largest first
    box: tuple[float, float, float, float]
    score: float
    group: str  # folder name: a person's name, person-NNN or "unsorted"
    label: int  # cluster_embeddings' label, -1 = unsorted
    person: str | None = None  # the known person this face matches (with a gallery)
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "face": self.face,
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "group": self.group,
            "person": self.person,
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
        }

    def csv_row(self) -> list[str]:
        sim = "" if self.similarity is None else f"{self.similarity:.4f}"
        return [self.image, str(self.face), *(f"{v:.1f}" for v in self.box), self.group,
                self.person or "", sim]  # fmt: skip
