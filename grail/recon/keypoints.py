"""The body keypoints reconstruction works with, and how MediaPipe's 33 landmarks map onto them.

Each keypoint is a named joint of the character (a bone origin of its rig: see
``grail/character/anny_body.py`` ``ANNY_JOINT_BONES``). MediaPipe Pose landmark indices are from
its documentation (0 nose ... 11/12 shoulders, 13/14 elbows, 15/16 wrists, 23/24 hips, 25/26
knees, 27/28 ankles); "left" is the person's left in both. MediaPipe's landmarks sit a few
centimetres from the character's joints (its hips inside the hip joint centres, its ankles on
the malleoli, above the ankle bone origins), and not the same way on the side of the body that
faces the camera as on the side turned away: ``MEDIAPIPE_NEAR_OFFSETS_M`` and
``MEDIAPIPE_FAR_OFFSETS_M`` hold the measured offsets, which the fit applies (`landmark_points`).
The head's keypoint is the midpoint of MediaPipe's ears (landmarks 7 and 8): it has no mirror
image, so it is its own partner and takes one offset whichever way it faces.
"""

from __future__ import annotations

import numpy as np
import torch

from grail.recon.body import TorchRig
from grail.recon.observations import Observations

KEYPOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head",
)


def _mirror(name: str) -> str:
    """The keypoint's mirror image (left <-> right); a keypoint on the body's midline is its own."""
    side, _, joint = name.partition("_")
    return {"left": f"right_{joint}", "right": f"left_{joint}"}.get(side, name)


#: For each keypoint, the index in KEYPOINTS of its mirror image.
PARTNER: tuple[int, ...] = tuple(KEYPOINTS.index(_mirror(name)) for name in KEYPOINTS)

#: keypoint -> the MediaPipe Pose landmark indices whose mean it is.
MEDIAPIPE_INDEX: dict[str, tuple[int, ...]] = {
    "left_shoulder": (11,), "right_shoulder": (12,), "left_elbow": (13,), "right_elbow": (14,),
    "left_wrist": (15,), "right_wrist": (16,), "left_hip": (23,), "right_hip": (24,),
    "left_knee": (25,), "right_knee": (26,), "left_ankle": (27,), "right_ankle": (28,), "head": (7, 8),
}

#: Where MediaPipe's landmarks sit on the character: the offset of each from its joint, metres in
#: the joint bone's rest-relative frame (x forward, y left, z up), one table for a joint nearer
#: the camera than its mirror image and one for the further, fitted by least squares to
#: MediaPipe's detections on rendered clips at their ground-truth poses (seeds 0-1 of every
#: template, left and right as mirror images). `python benchmarks/calibrate_keypoints.py` refits
#: them and checks seeds 2-4: median residual 4.59 px without offsets, 4.20 with one offset for
#: both sides, 3.15 with these (near hips 7.2 -> 2.6). Its hips sit 1-4 cm inside the hip joints,
#: and on the near side its shoulders, hips and knees sit 1.4-2.5 cm higher than on the far side:
#: a pixel's height at a planted foot is about 2 cm of depth. Where it puts a hidden (far) elbow
#: or wrist is a guess that hangs on the visible arm, so those are left at the joint. Its ears'
#: midpoint sits 3 cm in front of and 3 cm above the head joint (the head bone's origin): median
#: residual 8.3 px without the offset, 1.1-2.8 px per template with it (the 13 keypoints: 4.87
#: px without offsets, 2.99 with these).
MEDIAPIPE_NEAR_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "left_shoulder": (0.009, -0.028, 0.016), "right_shoulder": (0.009, 0.028, 0.016),
    "left_elbow": (0.000, -0.019, 0.009), "right_elbow": (0.000, 0.019, 0.009),
    "left_wrist": (0.012, 0.004, 0.009), "right_wrist": (0.012, -0.004, 0.009),
    "left_hip": (0.013, -0.036, 0.012), "right_hip": (0.013, 0.036, 0.012),
    "left_knee": (-0.001, -0.012, 0.013), "right_knee": (-0.001, 0.012, 0.013),
    "left_ankle": (0.007, 0.006, 0.023), "right_ankle": (0.007, -0.006, 0.023),
    "head": (0.029, -0.008, 0.031),
}
MEDIAPIPE_FAR_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "left_shoulder": (0.014, -0.020, 0.001), "right_shoulder": (0.014, 0.020, 0.001),
    "left_elbow": (0.000, 0.000, 0.000), "right_elbow": (0.000, 0.000, 0.000),
    "left_wrist": (0.000, 0.000, 0.000), "right_wrist": (0.000, 0.000, 0.000),
    "left_hip": (0.011, -0.011, -0.013), "right_hip": (0.011, 0.011, -0.013),
    "left_knee": (0.001, 0.012, -0.001), "right_knee": (0.001, -0.012, -0.001),
    "left_ankle": (0.008, -0.002, 0.021), "right_ankle": (0.008, 0.002, 0.021),
    "head": (0.029, -0.008, 0.031),
}
#: Over about this difference in distance to the camera, a joint turns from the far side's
#: offset to the near side's (a pair at equal distance takes the mean of the two).
NEAR_FAR_BLEND_M = 0.02


#: The joints whose confidence ranks a pair by depth, for an estimator whose confidence is a
#: visibility (MediaPipe's): the body hides the far one of a pair, reported the less visible. Over
#: MediaPipe's detections on the 45 benchmark clips (seeds 0-4 of every template), a gap over 0.2
#: put the more visible one nearer the camera in 99.9 % of 4601 frames for the knees, 100 % of
#: 2467 for the ankles and 99.4 % of 5864 for the elbows. Wrists are left out (98.9 %, and wrong
#: by up to 18 cm: hands cross in front of the body), shoulders and hips too (always reported visible).
DEPTH_ORDER_JOINTS = ("knee", "ankle", "elbow")
DEPTH_ORDER_GAP = (0.2, 0.4)  # confidence gap from no evidence to full evidence


def depth_order_evidence(obs: Observations) -> np.ndarray:
    """(T,P) evidence on which joint of each pair in DEPTH_ORDER_JOINTS is nearer the camera, from
    the gap between their confidences: up to +1 the left one, down to -1 the right one, 0 none
    (an estimator whose confidence is no visibility, a joint unseen or outside the image)."""
    evidence = np.zeros((obs.frames, len(DEPTH_ORDER_JOINTS)))
    if not obs.estimator.startswith("mediapipe"):
        return evidence
    inside = ((obs.keypoints >= 0) & (obs.keypoints < [obs.width, obs.height])).all(-1) & (obs.keypoint_conf > 0)
    low, high = DEPTH_ORDER_GAP
    for p, joint in enumerate(DEPTH_ORDER_JOINTS):
        left, right = (obs.keypoint_names.index(f"{side}_{joint}") for side in ("left", "right"))
        gap = obs.keypoint_conf[:, left] - obs.keypoint_conf[:, right]
        strength = np.clip((np.abs(gap) - low) / (high - low), 0.0, 1.0)
        evidence[:, p] = np.where(inside[:, left] & inside[:, right], np.sign(gap) * strength, 0.0)
    return evidence


def depth_order_bones(rig: TorchRig) -> list[list[int]]:
    """[left bones, right bones] of the rig's joints in DEPTH_ORDER_JOINTS, pair by pair."""
    return [[rig.joint_bones[f"{side}_{joint}"] for joint in DEPTH_ORDER_JOINTS] for side in ("left", "right")]


def keypoint_offsets(estimator: str) -> np.ndarray:
    """(2,K,3) offsets of the estimator's keypoints from the character's joints, when the joint is
    nearer the camera than its mirror image and when further (zero for the oracle, which
    projects the joints themselves)."""
    if estimator.startswith("mediapipe"):
        return np.array([[table[name] for name in KEYPOINTS]
                         for table in (MEDIAPIPE_NEAR_OFFSETS_M, MEDIAPIPE_FAR_OFFSETS_M)])
    return np.zeros((2, len(KEYPOINTS), 3))


def landmark_points(rig: TorchRig, positions: torch.Tensor, deltas: torch.Tensor, offsets: torch.Tensor,
                    eye: torch.Tensor) -> torch.Tensor:
    """(T,K,3) where the estimator's keypoints sit on the body posed at `positions`/`deltas`
    (TorchRig.forward) seen from a camera at `eye`: each joint moved by its near or far offset
    (`offsets`, from keypoint_offsets), as it is nearer the camera than its mirror image or not."""
    joints = rig.joints(positions, KEYPOINTS)
    distance = torch.linalg.norm(joints - eye, dim=-1)
    nearness = torch.sigmoid((distance[:, list(PARTNER)] - distance) / NEAR_FAR_BLEND_M)[..., None]
    near, far = (rig.points(positions, deltas, KEYPOINTS, side) for side in offsets)
    return nearness * near + (1 - nearness) * far
