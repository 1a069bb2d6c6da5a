"""The body keypoints reconstruction works with, and how MediaPipe's 33 landmarks map onto them.

Each keypoint is a named joint of the character (a bone origin of its rig: see
``grail/character/anny_body.py`` ``ANNY_JOINT_BONES``). MediaPipe Pose landmark indices are from
its documentation (0 nose ... 11/12 shoulders, 13/14 elbows, 15/16 wrists, 23/24 hips, 25/26
knees, 27/28 ankles); "left" is the person's left in both. MediaPipe's landmarks sit a few
centimetres from the character's joints (its hips inside the hip joint centres, its ankles on
the malleoli, above the ankle bone origins): ``MEDIAPIPE_OFFSETS_M`` holds the measured offsets,
which the fit applies. The head has no such landmark and is not fitted to a keypoint.
"""

from __future__ import annotations

import numpy as np

KEYPOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: keypoint -> MediaPipe Pose landmark index.
MEDIAPIPE_INDEX: dict[str, int] = {
    "left_shoulder": 11, "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14,
    "left_wrist": 15, "right_wrist": 16, "left_hip": 23, "right_hip": 24,
    "left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28,
}

#: Where MediaPipe's landmarks sit on the character: the offset of each from its joint, metres in
#: the joint bone's rest-relative frame (x forward, y left, z up), fitted by least squares to
#: MediaPipe's detections on rendered clips at their ground-truth poses (seeds 0-1 of every
#: template, left and right as mirror images; `python benchmarks/calibrate_keypoints.py` refits
#: them and checks seeds 2-4: median residual 4.60 -> 3.49 px). Its hips sit 3.7 cm inside the
#: character's hip joints. Elbows and wrists are left at the joint: where MediaPipe puts them
#: depends on the arm's pose and on which arm is hidden.
MEDIAPIPE_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "left_shoulder": (0.014, -0.026, 0.008), "right_shoulder": (0.014, 0.026, 0.008),
    "left_elbow": (0.0, 0.0, 0.0), "right_elbow": (0.0, 0.0, 0.0),
    "left_wrist": (0.0, 0.0, 0.0), "right_wrist": (0.0, 0.0, 0.0),
    "left_hip": (0.011, -0.037, 0.004), "right_hip": (0.011, 0.037, 0.004),
    "left_knee": (-0.002, -0.007, 0.008), "right_knee": (-0.002, 0.007, 0.008),
    "left_ankle": (0.009, -0.001, 0.020), "right_ankle": (0.009, 0.001, 0.020),
}


def keypoint_offsets(estimator: str) -> np.ndarray:
    """(K,3) offsets of the estimator's keypoints from the character's joints (zero for the
    oracle, which projects the joints themselves)."""
    if estimator.startswith("mediapipe"):
        return np.array([MEDIAPIPE_OFFSETS_M[name] for name in KEYPOINTS])
    return np.zeros((len(KEYPOINTS), 3))
