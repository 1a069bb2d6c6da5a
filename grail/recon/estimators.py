"""Human keypoint estimators behind one interface.

``mediapipe`` (the default): MediaPipe Pose 0.10.14 in video (tracking) mode with
``model_complexity=1``, whose models ship inside the wheel, so it runs offline on a CPU. Frames
smaller than ``MIN_SIDE_PX`` are upscaled first (a person some 60 px tall is found more reliably
twice that size); coordinates come back in the video's pixels and MediaPipe's landmark
visibility is kept as the confidence. Other estimators (learned, from local weights) implement
the same ``estimate``; the ``oracle`` lives in ``grail/recon/oracle.py`` and needs the ground truth.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from grail.errors import GrailError
from grail.recon.keypoints import KEYPOINTS, MEDIAPIPE_INDEX
from grail.recon.observations import Observations

MIN_SIDE_PX = 640
MEDIAPIPE_VERSION = "0.10.14"


class HumanEstimator(Protocol):
    name: str

    def estimate(self, frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                 progress: Callable[[int], None] | None = None) -> Observations: ...


class MediaPipeEstimator:
    """MediaPipe Pose on every frame of a video, tracking from frame to frame."""

    name = f"mediapipe-pose=={MEDIAPIPE_VERSION} (model_complexity=1, video mode)"

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence

    def estimate(self, frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                 progress: Callable[[int], None] | None = None) -> Observations:
        pose_module = _mediapipe_pose()
        scale = max(1, int(np.ceil(MIN_SIDE_PX / max(width, height))))
        points, conf = [], []
        with _quiet_native_logs(), pose_module.Pose(static_image_mode=False, model_complexity=1,
                                                    min_detection_confidence=self.min_detection_confidence,
                                                    min_tracking_confidence=self.min_tracking_confidence) as pose:
            for i, frame in enumerate(frames):
                uv, c = _landmarks(pose.process(_upscale(frame, scale)), width, height)
                points.append(uv)
                conf.append(c)
                if progress:
                    progress(i + 1)
        if not points:
            raise GrailError("the video has no frames", field="video")
        return Observations(fps=fps, width=width, height=height, estimator=self.name, oracle=False,
                            keypoint_names=list(KEYPOINTS), keypoints=np.stack(points), keypoint_conf=np.stack(conf))


def _landmarks(result, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    uv = np.zeros((len(KEYPOINTS), 2))
    conf = np.zeros(len(KEYPOINTS))
    if result.pose_landmarks is None:
        return uv, conf
    marks = result.pose_landmarks.landmark
    for k, name in enumerate(KEYPOINTS):
        ms = [marks[i] for i in MEDIAPIPE_INDEX[name]]
        # Normalised to the (upscaled) image; pixel centres at +0.5 in MediaPipe's convention.
        uv[k] = (np.mean([m.x for m in ms]) * width - 0.5, np.mean([m.y for m in ms]) * height - 0.5)
        conf[k] = float(np.clip(max(m.visibility for m in ms), 0.0, 1.0))  # seen when any part is
    return uv, conf


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    return frame if scale == 1 else np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _mediapipe_pose():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from mediapipe.python.solutions import pose
    except ImportError as err:
        raise GrailError(f"MediaPipe is not installed ({err}): run scripts/setup", field="--human") from None
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
    return pose


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """MediaPipe's C++ side logs TF Lite delegate notes to file descriptor 2 on start-up; its
    logging flags do not silence them, so fd 2 is pointed at /dev/null meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
