"""The body keypoints reconstruction works with, and how MediaPipe's 33 landmarks map onto them.

Each keypoint is a named joint of the character (a bone origin of its rig: see
``grail/character/anny_body.py`` ``ANNY_JOINT_BONES``). MediaPipe Pose landmark indices are from
its documentation (0 nose ... 11/12 shoulders, 13/14 elbows, 15/16 wrists, 23/24 hips, 25/26
knees, 27/28 ankles); "left" is the person's left in both. MediaPipe's hip landmarks sit near the
hip joint centres and its ankle landmarks on the malleoli, close to the character's ankle bone
origins; the head has no such landmark and is not fitted to a keypoint.
"""

from __future__ import annotations

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
