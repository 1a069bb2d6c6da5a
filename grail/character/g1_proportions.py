"""Unitree G1 (29-DoF, ``g1_29dof_rev_1_0``) segment lengths used to proportion the character.

Source: ``mjlab/asset_zoo/robots/unitree_g1/xmls/g1.xml`` in the mjlab 1.6.0 wheel (PyPI). The
numbers are the world positions of the body frames at ``qpos0`` (all joints zero, pelvis body at
``pos="0 0 0.793"`` as in that file), computed with ``mujoco.mj_forward`` once and hard-coded here;
the file itself is not vendored. Joint centres used:

- hip: ``*_hip_roll_link`` origin (the hip pitch/roll/yaw axes do not meet; the roll frame sits in
  the middle of the chain), knee: ``*_knee_link``, ankle: ``*_ankle_pitch_link``;
- shoulder: ``*_shoulder_roll_link``, elbow: ``*_elbow_link``, wrist: ``*_wrist_yaw_link`` (where
  the hand starts; at qpos0 the G1 forearm points forward, which does not change its length);
- standing height: top of the torso/head mesh (1.3236 m) with the foot soles at z≈0.001.
"""

from __future__ import annotations

G1_MODEL = "g1_29dof_rev_1_0"
G1_SOURCE = "mjlab==1.6.0: mjlab/asset_zoo/robots/unitree_g1/xmls/g1.xml (qpos0)"

#: Segment lengths in metres (see module doc for the joint centres).
G1_SEGMENTS: dict[str, float] = {
    "height": 1.32,  # standing height (head mesh top 1.3236 m; nominal 1.32 m)
    "pelvis_width": 0.2329,  # left-right hip_roll_link distance
    "thigh": 0.3061,  # hip_roll_link -> knee_link
    "shank": 0.3000,  # knee_link -> ankle_pitch_link
    "ankle_height": 0.0537,  # ankle_pitch_link above the ground
    "shoulder_width": 0.2811,  # left-right shoulder_roll_link distance
    "upper_arm": 0.1845,  # shoulder_roll_link -> elbow_link
    "forearm": 0.1843,  # elbow_link -> wrist_yaw_link
    "hip_height": 0.6598,  # hip joint centre above the ground
    "shoulder_height": 1.0820,  # shoulder_roll_link above the ground
}

#: Pelvis body (root link) origin height when standing at qpos0; the hip joints sit 0.13 m lower.
G1_PELVIS_HEIGHT = 0.793

#: How much each segment matters in the character fit (height dominates: the scene is metric).
FIT_WEIGHTS: dict[str, float] = {
    "height": 10.0,
    "pelvis_width": 1.0,
    "thigh": 3.0,
    "shank": 3.0,
    "ankle_height": 1.0,
    "shoulder_width": 2.0,
    "upper_arm": 2.0,
    "forearm": 2.0,
    "hip_height": 3.0,
    "shoulder_height": 3.0,
}
