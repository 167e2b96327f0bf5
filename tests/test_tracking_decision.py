"""The live stream's tracker follows the open-set decision: a person the frame's decision set
aside (closer to their negatives) is not kept as the track's label, and each steadied face says
why it is (or is not) a match."""

from __future__ import annotations

from facemetric.web.tracking import Tracker


def face(similarity: float, reason: str, vetoed: tuple[str, ...] = ()) -> dict:
    return {
        "box": [10.0, 10.0, 60.0, 60.0],
        "identity": "ada" if reason == "match" else None,
        "similarity": similarity,
        "is_match": reason == "match",
        "reason": reason,
        "top_k": [{"identity": "ada", "similarity": similarity, "face_id": 1}],
        "decision": {"reason": reason, "vetoed": list(vetoed)},
    }


def test_tracker_drops_a_vetoed_person_and_says_why() -> None:
    tracker = Tracker(alpha=0.5, margin=0.01)
    (first,) = tracker.update([face(0.97, "match")], threshold=0.94)
    assert first["identity"] == "ada" and first["reason"] == "match"
    assert first["decision"]["reason"] == "match"  # the frame's own decision travels along
    # marked "not ada": the next frames' decisions veto her; the track lets her go at once
    (vetoed,) = tracker.update([face(0.97, "closer_to_negative", ("ada",))], threshold=0.94)
    later = tracker.update([face(0.97, "closer_to_negative", ("ada",))], threshold=0.94)[0]
    assert later["identity"] is None and later["reason"] == "closer_to_negative"
    assert vetoed["raw"]["reason"] == "closer_to_negative"


def test_a_new_track_waits_for_the_average_steadying() -> None:
    tracker = Tracker(alpha=0.5, margin=0.02)
    tracker.update([face(0.90, "below_threshold")], threshold=0.94)
    (steady,) = tracker.update([face(0.95, "match")], threshold=0.94)
    assert steady["identity"] is None and steady["reason"] == "steadying"
