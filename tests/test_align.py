"""Alignment maths against scikit-image and OpenCV, and re-detection on aligned crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.data import astronaut
from skimage.transform import SimilarityTransform

from conftest import shared_set
from facemetric.data.align import (
    ARCFACE_TEMPLATE_112,
    AlignedFace,
    align_face,
    detect_and_align,
    similarity_transform,
    template,
)
from facemetric.data.detect import create_detector
from facemetric.data.image import load_image
from facemetric.errors import ConfigError


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 5.0)
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, rng.uniform(-100, 100)], [s, c, rng.uniform(-100, 100)]])


@pytest.mark.parametrize("seed", range(5))
def test_exact_similarity_is_recovered(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = random_similarity(rng)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(similarity_transform(src, dst), truth, atol=1e-8)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_fit_matches_scikit_image_least_squares(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = src @ random_similarity(rng)[:, :2].T + rng.normal(scale=3.0, size=(5, 2))
    reference = SimilarityTransform.from_estimate(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), reference.params[:2], atol=1e-6)


def test_least_squares_error_not_worse_than_opencv_lmeds() -> None:
    """The chosen estimator minimises squared error over all five points; LMEDS does not."""
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 200, size=(5, 2))
    dst = src @ random_similarity(rng)[:, :2].T + rng.normal(scale=2.0, size=(5, 2))

    def sse(m: np.ndarray) -> float:
        return float(((src @ m[:, :2].T + m[:, 2] - dst) ** 2).sum())

    lmeds, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    assert sse(similarity_transform(src, dst)) <= sse(lmeds) + 1e-9


def test_reflections_are_not_allowed() -> None:
    src = ARCFACE_TEMPLATE_112.astype(np.float64)
    mirrored = src * [-1, 1]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_template_scales_with_size() -> None:
    np.testing.assert_allclose(template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(template(224), ARCFACE_TEMPLATE_112 * 2, rtol=1e-6)
    with pytest.raises(ConfigError, match="size"):
        template(8)


def test_landmarks_on_template_give_the_identity_warp() -> None:
    image = astronaut()
    crop = align_face(image, ARCFACE_TEMPLATE_112, size=112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, image[:112, :112])


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.full((5, 2), np.nan), np.zeros((5, 2))])
def test_bad_landmarks_raise_config_error(bad: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="landmarks"):
        align_face(astronaut(), bad)


def warped(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where the alignment sends the detected landmarks (the template, up to the fit's residual)."""
    m = similarity_transform(landmarks, template(size))
    return landmarks.astype(np.float64) @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("size", [112, 160])
def test_redetected_landmarks_land_on_the_template(size: int) -> None:
    detector = create_detector("retinaface", threads=1)
    faces = detect_and_align(astronaut(), detector, size=size)
    assert len(faces) == 1 and isinstance(faces[0], AlignedFace)
    crop = faces[0].crop
    assert crop.shape == (size, size, 3)
    again = detector.detect(crop)
    assert again, "no face found on the aligned crop"
    scale = size / 112
    # Re-detected points sit where the warp sent the original ones ...
    expected = warped(faces[0].detection.landmarks, size)
    assert np.linalg.norm(again[0].landmarks - expected, axis=1).mean() < 3.5 * scale
    # ... which is the template up to how this face's shape differs from the average one.
    assert np.linalg.norm(again[0].landmarks - template(size), axis=1).mean() < 7.0 * scale


def test_redetection_on_real_photos() -> None:
    root = shared_set("celeba-wild")
    detector = create_detector("retinaface", threads=1)
    to_warp, to_template = [], []
    for path in sorted(root.glob("*/*.jpg"))[:8]:
        faces = detect_and_align(load_image(path), detector)
        if not faces:
            continue
        again = detector.detect(faces[0].crop)
        if again:
            expected = warped(faces[0].detection.landmarks, 112)
            to_warp.append(np.linalg.norm(again[0].landmarks - expected, axis=1).mean())
            to_template.append(np.linalg.norm(again[0].landmarks - template(112), axis=1).mean())
    assert len(to_warp) >= 6
    assert np.median(to_warp) < 3.0 and np.median(to_template) < 6.0


def test_several_faces_come_largest_first() -> None:
    image = astronaut()
    small = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.zeros((512, 768, 3), dtype=np.uint8)
    frame[:, :512] = image
    frame[128:384, 512:] = small
    faces = detect_and_align(frame, create_detector("retinaface", threads=1))
    assert len(faces) == 2
    assert faces[0].detection.area > 2 * faces[1].detection.area
    assert faces[0].detection.landmarks[2, 0] < 512 < faces[1].detection.landmarks[2, 0]
    # Both crops show the same face: aligned, they are nearly the same picture.
    diff = np.abs(faces[0].crop.astype(int) - faces[1].crop.astype(int)).mean()
    assert diff < 30
