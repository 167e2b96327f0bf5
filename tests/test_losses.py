"""Each loss on tiny inputs against a value computed by hand (with plain math)."""

from __future__ import annotations

import math

import pytest
import torch

from facemetric.errors import ConfigError
from facemetric.train.losses import LossSettings, available_losses, create_loss

# Four 2-d unit embeddings: identity 0 at angles 0 and 30 degrees, identity 1 at 90 and 180.
ANGLES = [0.0, 30.0, 90.0, 180.0]
EMB = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in ANGLES])
LABELS = torch.tensor([0, 0, 1, 1])


def chord(a: float, b: float) -> float:
    """Euclidean distance between unit vectors at angles a and b (degrees)."""
    return 2 * math.sin(math.radians(abs(a - b)) / 2)


def settings(**kw: object) -> LossSettings:
    return LossSettings(num_classes=2, embedding_dim=2, **kw)  # type: ignore[arg-type]


def unit(*angles: float) -> torch.Tensor:
    return torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])


@pytest.mark.parametrize(
    ("miner", "expected_loss", "expected_active", "count"),
    [
        # labels [0, 0, 1] at 0, 30 and 70 degrees, margin 0.5: the only triplets are
        # (0, 1, 2): d(0,30) - d(0,70) + 0.5 = 0.5176 - 1.1472 + 0.5 < 0   (easy)
        # (1, 0, 2): d(30,0) - d(30,70) + 0.5 = 0.5176 - 0.6840 + 0.5 = 0.3336 (semi-hard)
        ("explicit", chord(30, 0) - chord(30, 70) + 0.5, 0.5, 2),
        ("semihard", chord(30, 0) - chord(30, 70) + 0.5, 0.5, 1),
        ("hard", 0.0, 0.5, 0),
    ],
)
def test_triplet_loss_equals_hand_value(
    miner: str, expected_loss: float, expected_active: float, count: int
) -> None:
    out = create_loss("triplet", settings(margin=0.5, miner=miner))(
        unit(0, 30, 70), torch.tensor([0, 0, 1])
    )
    # pytorch-metric-learning averages over the triplets with a positive loss; "active" is the
    # share of all valid triplets (here 1 of 2) that violate the margin, whatever was mined.
    assert out.loss.item() == pytest.approx(expected_loss, abs=1e-5)
    assert out.stats["active"] == pytest.approx(expected_active)
    assert out.stats["triplets"] == count


def test_triplet_loss_all_easy_is_zero_with_no_active() -> None:
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]], requires_grad=True)
    out = create_loss("triplet", settings(margin=0.2, miner="semihard"))(emb, LABELS)
    assert out.loss.item() == 0.0 and out.stats["active"] == 0.0
    out.loss.backward()  # still part of the graph (DDP needs every parameter to get a gradient)
    assert emb.grad is not None


def _margin_loss_by_hand(kind: str, centres: torch.Tensor, scale: float, margin: float) -> float:
    total = 0.0
    for i, label in enumerate(LABELS.tolist()):
        x = EMB[i] / EMB[i].norm()
        logits = []
        for c in range(2):
            w = centres[:, c] / centres[:, c].norm()
            cos = float(x @ w)
            if c == label:
                if kind == "arcface":
                    cos = math.cos(math.acos(max(-1.0, min(1.0, cos))) + margin)
                else:
                    cos = cos - margin
            logits.append(scale * cos)
        top = max(logits)
        log_sum = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_sum - logits[label]
    return total / len(LABELS)


@pytest.mark.parametrize(
    ("kind", "margin_field", "margin"),
    [("arcface", "arcface_margin_deg", 28.6), ("cosface", "cosface_margin", 0.35)],
)
def test_margin_losses_equal_hand_value(kind: str, margin_field: str, margin: float) -> None:
    loss_fn = create_loss(kind, settings(scale=4.0, **{margin_field: margin}))
    centres = torch.tensor([[1.0, 0.0], [0.2, 1.0]]).T.contiguous()  # (dim, classes)
    with torch.no_grad():
        loss_fn.inner.W.copy_(centres)
    out = loss_fn(EMB, LABELS)
    m = math.radians(margin) if kind == "arcface" else margin
    assert out.loss.item() == pytest.approx(_margin_loss_by_hand(kind, centres, 4.0, m), rel=1e-4)
    assert out.stats["class_acc"] == pytest.approx(1.0)
    assert [p.shape for p in loss_fn.parameters()] == [torch.Size([2, 2])]


def test_arcface_plus_triplet_is_the_weighted_sum() -> None:
    s = settings(scale=4.0, margin=0.5, miner="hard", triplet_weight=0.5)
    combined = create_loss("arcface+triplet", s)
    arc, trip = create_loss("arcface", s), create_loss("triplet", s)
    with torch.no_grad():
        arc.inner.W.copy_(combined.first.inner.W)
    expected = arc(EMB, LABELS).loss + 0.5 * trip(EMB, LABELS).loss
    out = combined(EMB, LABELS)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert {"class_acc", "active"} <= set(out.stats)


def test_registry_names_and_unknown() -> None:
    assert set(available_losses()) >= {"triplet", "arcface", "cosface", "arcface+triplet"}
    with pytest.raises(ConfigError, match="loss: unknown name 'softmax'"):
        create_loss("softmax", settings())
