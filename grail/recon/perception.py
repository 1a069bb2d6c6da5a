"""Human perception for the reconstruct stage: pick an estimator by name, run it on the video, and
check that the person is found often enough.

Short gaps (frames where the torso is not seen) are left to the fit, whose smoothness bridges
them; a gap longer than `max_gap_s` fails with its frame range, because a fit across it would be
invented motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from grail.errors import GrailError
from grail.recon.contacts import runs
from grail.recon.observations import Observations
from grail.recon.oracle import OracleOptions, oracle_observations
from grail.recon.video_input import VideoInput

HUMAN_ESTIMATORS = ("mediapipe", "oracle")
TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass
class PerceptionOptions:
    human: str = "mediapipe"
    oracle: OracleOptions = field(default_factory=OracleOptions)
    max_gap_s: float = 0.5        # longest run of frames without the person that the fit may bridge


def perceive_human(video: VideoInput, seq_dir: Path, options: PerceptionOptions,
                   progress: Callable[[int, int], None] | None = None) -> Observations:
    """2D keypoints of the character in every frame, checked for long gaps."""
    if options.human == "oracle":
        obs = _oracle(video, Path(seq_dir), options.oracle)
    elif options.human == "mediapipe":
        from grail.recon.estimators import MediaPipeEstimator

        tick = (lambda i: progress(i, len(video.frames))) if progress else None
        obs = MediaPipeEstimator().estimate(video.frames, video.fps, video.camera.width, video.camera.height,
                                            progress=tick)
    else:
        raise GrailError(f"unknown human estimator {options.human!r}; known: {', '.join(HUMAN_ESTIMATORS)}",
                         field="human")
    check_gaps(obs, options.max_gap_s, Path(seq_dir) / "video" / "video.mp4")
    return obs


def person_seen(obs: Observations) -> np.ndarray:
    """(T,) frames in which the torso (shoulders and hips) was found."""
    idx = [obs.keypoint_names.index(k) for k in TORSO]
    return (obs.keypoint_conf[:, idx] > 0).sum(axis=1) >= 3


def missing_runs(seen: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) frame ranges where `seen` is False."""
    return [(start, end - 1) for start, end in runs(~np.asarray(seen, bool))]


def check_gaps(obs: Observations, max_gap_s: float, file: Path) -> None:
    seen = person_seen(obs)
    if not seen.any():
        raise GrailError(f"no person found in any of the {obs.frames} frames ({obs.estimator})", file=file)
    longest = int(np.ceil(max_gap_s * obs.fps))
    for first, last in missing_runs(seen):
        if last - first + 1 > longest:
            raise GrailError(f"no person found in frames {first}-{last} ({last - first + 1} frames, more than "
                             f"{max_gap_s:g} s)", file=file)


def _oracle(video: VideoInput, seq_dir: Path, options: OracleOptions) -> Observations:
    from grail.video.gt import GroundTruth

    path = seq_dir / "video" / "gt.npz"
    if not path.is_file():
        raise GrailError("the oracle estimator projects the ground truth, and there is none", file=path)
    gt = GroundTruth.load(path)
    if gt.frames != len(video.frames):
        raise GrailError(f"{gt.frames} frames, the video has {len(video.frames)}", file=path, field="frames")
    return oracle_observations(gt.joint_names, gt.joint_pos, video.fps, video.camera, options)
