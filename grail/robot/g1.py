"""Unitree G1 29-DoF (``g1_29dof_rev_1_0``): names, limits, gains and poses in one place.

Sources (facts, not code):
- joint order: Unitree SDK2 motor index for the 29-DoF G1 (left leg 6, right leg 6, waist 3,
  left arm 7, right arm 7), which is also the joint order of mjlab's packaged ``g1.xml``;
- position limits: the ``range`` attributes of ``mjlab/asset_zoo/robots/unitree_g1/xmls/g1.xml``
  (mjlab 1.6.0 wheel); ``tests/test_retarget.py`` checks them against the loaded model;
- velocity and effort limits per actuator group: ``mjlab/asset_zoo/robots/unitree_g1/g1_constants.py``
  (5020: 37 rad/s, 25 Nm; 7520-14: 32 rad/s, 88 Nm; 7520-22: 20 rad/s, 139 Nm; 4010: 22 rad/s, 5 Nm;
  waist roll/pitch and ankles are driven by two 5020s: 37 rad/s, 50 Nm);
- poses: the ``HOME`` and ``KNEES_BENT`` keyframes of the same file;
- head camera: REFERENCE.md (D435-class on the torso link at (0.058, 0.018, 0.430) m, pitched
  down about 47.6 degrees).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from grail.errors import GrailError

NAME = "g1_29dof_rev_1_0"

JOINT_NAMES: tuple[str, ...] = (
    "left_hip_pitch_joint", "left_hip_roll_joint", "left_hip_yaw_joint",
    "left_knee_joint", "left_ankle_pitch_joint", "left_ankle_roll_joint",
    "right_hip_pitch_joint", "right_hip_roll_joint", "right_hip_yaw_joint",
    "right_knee_joint", "right_ankle_pitch_joint", "right_ankle_roll_joint",
    "waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint",
    "left_shoulder_pitch_joint", "left_shoulder_roll_joint", "left_shoulder_yaw_joint",
    "left_elbow_joint", "left_wrist_roll_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
    "right_shoulder_pitch_joint", "right_shoulder_roll_joint", "right_shoulder_yaw_joint",
    "right_elbow_joint", "right_wrist_roll_joint", "right_wrist_pitch_joint", "right_wrist_yaw_joint",
)

# (lower, upper) in rad, from g1.xml.
_LIMITS = {
    "hip_pitch": (-2.5307, 2.8798), "knee": (-0.087267, 2.8798),
    "ankle_pitch": (-0.87267, 0.5236), "ankle_roll": (-0.2618, 0.2618), "hip_yaw": (-2.7576, 2.7576),
    "waist_yaw": (-2.618, 2.618), "waist_roll": (-0.52, 0.52), "waist_pitch": (-0.52, 0.52),
    "shoulder_pitch": (-3.0892, 2.6704), "shoulder_yaw": (-2.618, 2.618), "elbow": (-1.0472, 2.0944),
    "wrist_roll": (-1.97222, 1.97222), "wrist_pitch": (-1.61443, 1.61443), "wrist_yaw": (-1.61443, 1.61443),
}
# Roll joints are mirrored between the sides.
_SIDED = {"hip_roll": (-0.5236, 2.9671), "shoulder_roll": (-1.5882, 2.2515)}

# Actuator groups: (velocity limit rad/s, effort limit Nm, kp, kd); kp/kd as in REFERENCE.md.
ACTUATOR_GROUPS: dict[str, tuple[float, float, float, float]] = {
    "5020": (37.0, 25.0, 14.25, 0.91),
    "7520_14": (32.0, 88.0, 40.18, 2.56),
    "7520_22": (20.0, 139.0, 99.10, 6.31),
    "4010": (22.0, 5.0, 16.78, 1.07),
    "2x5020": (37.0, 50.0, 28.50, 1.81),
}
_GROUP_OF = {
    "hip_pitch": "7520_14", "hip_yaw": "7520_14", "waist_yaw": "7520_14",
    "hip_roll": "7520_22", "knee": "7520_22",
    "ankle_pitch": "2x5020", "ankle_roll": "2x5020", "waist_roll": "2x5020", "waist_pitch": "2x5020",
    "shoulder_pitch": "5020", "shoulder_roll": "5020", "shoulder_yaw": "5020", "elbow": "5020",
    "wrist_roll": "5020", "wrist_pitch": "4010", "wrist_yaw": "4010",
}


def _kind(joint: str) -> str:
    return joint.removeprefix("left_").removeprefix("right_").removesuffix("_joint")


def _limits(joint: str) -> tuple[float, float]:
    kind = _kind(joint)
    if kind in _SIDED:
        lo, hi = _SIDED[kind]
        return (lo, hi) if joint.startswith("left_") else (-hi, -lo)
    return _LIMITS[kind]


# Keyframes (root height, joint values by name; the rest are zero).
_POSES: dict[str, tuple[float, dict[str, float]]] = {
    "home": (0.783675, {"hip_pitch": -0.1, "knee": 0.3, "ankle_pitch": -0.2, "shoulder_pitch": 0.2,
                        "elbow": 1.28, "left_shoulder_roll": 0.2, "right_shoulder_roll": -0.2}),
    "knees_bent": (0.76, {"hip_pitch": -0.312, "knee": 0.669, "ankle_pitch": -0.363, "elbow": 0.6,
                          "shoulder_pitch": 0.2, "left_shoulder_roll": 0.2, "right_shoulder_roll": -0.2}),
}


@dataclass(frozen=True)
class RobotSpec:
    """What the pipeline needs to know about a robot, by name."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity_limit: np.ndarray
    effort_limit: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    root_body: str
    torso_body: str
    foot_sites: dict[str, str]
    palm_sites: dict[str, str]
    foot_bodies: dict[str, str]
    hand_bodies: dict[str, str]
    elbow_bodies: dict[str, str]
    knee_bodies: dict[str, str]
    head_camera: dict = field(default_factory=dict)

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def default_pose(self, name: str = "knees_bent") -> tuple[float, np.ndarray]:
        """(root height, joint positions in SDK order) of a named keyframe."""
        if name not in _POSES:
            raise GrailError(f"unknown pose {name!r} (known: {', '.join(_POSES)})", field="pose")
        height, values = _POSES[name]
        q = np.zeros(self.dof)
        for i, joint in enumerate(self.joint_names):
            side = "left_" if joint.startswith("left_") else "right_" if joint.startswith("right_") else ""
            kind = _kind(joint)
            q[i] = values.get(side + kind, values.get(kind, 0.0))
        return height, q


def _g1() -> RobotSpec:
    names = JOINT_NAMES
    groups = [ACTUATOR_GROUPS[_GROUP_OF[_kind(j)]] for j in names]
    lim = np.array([_limits(j) for j in names])
    sides = ("left", "right")
    return RobotSpec(
        name=NAME, joint_names=names, lower=lim[:, 0], upper=lim[:, 1],
        velocity_limit=np.array([g[0] for g in groups]), effort_limit=np.array([g[1] for g in groups]),
        kp=np.array([g[2] for g in groups]), kd=np.array([g[3] for g in groups]),
        root_body="pelvis", torso_body="torso_link",
        foot_sites={s: f"{s}_foot" for s in sides}, palm_sites={s: f"{s}_palm" for s in sides},
        foot_bodies={s: f"{s}_ankle_roll_link" for s in sides},
        hand_bodies={s: f"{s}_wrist_yaw_link" for s in sides},
        elbow_bodies={s: f"{s}_elbow_link" for s in sides},
        knee_bodies={s: f"{s}_knee_link" for s in sides},
        head_camera={"body": "torso_link", "pos": (0.058, 0.018, 0.430), "pitch_down_deg": 47.6},
    )


G1 = _g1()
ROBOTS: dict[str, RobotSpec] = {NAME: G1, "g1": G1}


def robot_spec(name: str) -> RobotSpec:
    """The robot of that name; an unknown name is bad input."""
    if name not in ROBOTS:
        raise GrailError(f"unknown robot {name!r} (known: {', '.join(ROBOTS)})", field="robot")
    return ROBOTS[name]
