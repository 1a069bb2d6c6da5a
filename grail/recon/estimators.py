"""Human keypoint estimators behind one interface.

``mediapipe`` (the default): MediaPipe Pose 0.10.14 in video (tracking) mode with
``model_complexity=1``, whose models ship inside the wheel, so it runs offline on a CPU. Frames
smaller than ``MIN_SIDE_PX`` are upscaled first (a person some 60 px tall is found more reliably
twice that size); coordinates come back in the video's pixels and MediaPipe's landmark
visibility is kept as the confidence. Frames where the video pass finds no one, next to frames
where it does, are looked at again on a square crop around the person found nearest in time,
tracked frame by frame away from it (`second_look`): the pose detector sees the whole frame at
224 px, where a person 230 px tall in 1280x720, side on at the top of a stair, was missed for
the clip's first 14 frames (stairs_down s1) and found at once in a crop twice their size. Other
estimators (learned, from local weights) implement the same ``estimate``; the ``oracle`` lives in
``grail/recon/oracle.py`` and needs the ground truth.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable, Iterable, Iterator, Protocol

import numpy as np

from grail.errors import GrailError
from grail.recon.contacts import runs
from grail.recon.keypoints import KEYPOINTS, MEDIAPIPE_INDEX
from grail.recon.observations import Observations

MIN_SIDE_PX = 640
MEDIAPIPE_VERSION = "0.10.14"
CROP_SHARE = 2.0    # a second look's crop side over the extent of the person's keypoints ...
MIN_CROP_PX = 256   # ... and at least this (the landmark model's input side), within the frame


class HumanEstimator(Protocol):
    name: str

    def estimate(self, frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                 progress: Callable[[int], None] | None = None) -> Observations: ...


class MediaPipeEstimator:
    """MediaPipe Pose on every frame of a video, tracking from frame to frame."""

    name = f"mediapipe-pose=={MEDIAPIPE_VERSION} (model_complexity=1, video mode)"

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 second_look: bool = True) -> None:
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.second_look = second_look

    def estimate(self, frames: Iterable[np.ndarray], fps: float, width: int, height: int,
                 progress: Callable[[int], None] | None = None) -> Observations:
        frames = frames if isinstance(frames, (list, np.ndarray)) else list(frames)
        scale = max(1, int(np.ceil(MIN_SIDE_PX / max(width, height))))
        points, conf = [], []
        with self._pose() as pose:
            for i, frame in enumerate(frames):
                uv, c = _landmarks(pose.process(_upscale(frame, scale)), width, height)
                points.append(uv)
                conf.append(c)
                if progress:
                    progress(i + 1)
        if not points:
            raise GrailError("the video has no frames", field="video")
        points, conf = np.stack(points), np.stack(conf)
        if self.second_look:
            self._look_again(frames, points, conf, width, height)
        return Observations(fps=fps, width=width, height=height, estimator=self.name, oracle=False,
                            keypoint_names=list(KEYPOINTS), keypoints=points, keypoint_conf=conf)

    @contextlib.contextmanager
    def _pose(self) -> Iterator:
        """A MediaPipe Pose tracker in video mode, its start-up logs silenced."""
        pose_module = _mediapipe_pose()
        with _quiet_native_logs(), pose_module.Pose(static_image_mode=False, model_complexity=1,
                                                    min_detection_confidence=self.min_detection_confidence,
                                                    min_tracking_confidence=self.min_tracking_confidence) as pose:
            yield pose

    def _look_again(self, frames, points: np.ndarray, conf: np.ndarray, width: int, height: int) -> None:
        """Fill, in place, runs of frames without a person from a crop around the person found
        next to the run, tracked into it (backward from its end, then forward from its start)
        until the crop shows no one. A crop smaller than MIN_CROP_PX (a small video) is upscaled
        to it, as whole frames are to MIN_SIDE_PX."""
        for start, end in runs(conf.max(axis=1) <= 0):
            for anchor, order in ((end, range(end - 1, start - 1, -1)), (start - 1, range(start, end))):
                if not 0 <= anchor < len(frames) or conf[anchor].max() <= 0:
                    continue
                box = person_box(points[anchor], conf[anchor])
                with self._pose() as pose:
                    for t in order:
                        if conf[t].max() > 0 or box is None:
                            break
                        x0, y0, side = crop_square(box, width, height)
                        crop = _upscale(frames[t][y0:y0 + side, x0:x0 + side], int(np.ceil(MIN_CROP_PX / side)))
                        uv, c = _landmarks(pose.process(crop), side, side, x0, y0)
                        if c.max() <= 0:
                            break
                        points[t], conf[t] = uv, c
                        box = person_box(uv, c)


def person_box(uv: np.ndarray, conf: np.ndarray) -> tuple[float, float, float] | None:
    """(centre u, centre v, extent) of the keypoints found (extent: the larger side of their
    bounding box, pixels); None with fewer than three."""
    seen = uv[conf > 0]
    if len(seen) < 3:
        return None
    low, high = seen.min(axis=0), seen.max(axis=0)
    centre = (low + high) / 2
    return float(centre[0]), float(centre[1]), float((high - low).max())


def crop_square(box: tuple[float, float, float], width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop CROP_SHARE times the box's extent (at least MIN_CROP_PX)
    centred on it, moved inside the frame."""
    u, v, extent = box
    side = int(min(max(CROP_SHARE * extent, MIN_CROP_PX), width, height))
    x0 = int(np.clip(round(u - side / 2), 0, width - side))
    y0 = int(np.clip(round(v - side / 2), 0, height - side))
    return x0, y0, side


def _landmarks(result, width: int, height: int, x0: int = 0, y0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in the video's pixels from a result on a region width x height at (x0, y0)."""
    uv = np.zeros((len(KEYPOINTS), 2))
    conf = np.zeros(len(KEYPOINTS))
    if result.pose_landmarks is None:
        return uv, conf
    marks = result.pose_landmarks.landmark
    for k, name in enumerate(KEYPOINTS):
        ms = [marks[i] for i in MEDIAPIPE_INDEX[name]]
        # Normalised to the (upscaled) image; pixel centres at +0.5 in MediaPipe's convention.
        uv[k] = (x0 + np.mean([m.x for m in ms]) * width - 0.5, y0 + np.mean([m.y for m in ms]) * height - 0.5)
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
