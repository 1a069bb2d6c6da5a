"""A reference motion at the policy's control rate, with joints and bodies in the order a simulator
asks for, resolved by name (never by position). Shared by training, evaluation and sim2sim.

Motions from the retarget stage are at the video's frame rate; the tracker advances its reference
by one frame per control step, so motions are resampled to the control rate here: positions and
joint angles linearly, orientations by slerp, velocities by differences of the resampled motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from grail.errors import GrailError
from grail.robot.motion import RobotMotion, angular_velocity, finite_difference
from grail.rotations import wxyz_to_xyzw, xyzw_to_wxyz


@dataclass
class Reference:
    """One motion at `fps`; arrays (T, J) and (T, B, ...) in the requested name orders."""

    name: str
    fps: float
    joint_names: list[str]
    body_names: list[str]
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    body_pos_w: np.ndarray
    body_quat_w: np.ndarray
    body_lin_vel_w: np.ndarray
    body_ang_vel_w: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.joint_pos.shape[0])


def _order(have: list[str], want: list[str], where: Path, field: str) -> np.ndarray:
    missing = [n for n in want if n not in have]
    if missing:
        raise GrailError(f"the motion has no {missing[0]!r}", file=where, field=field)
    return np.array([have.index(n) for n in want])


def _resample_quats(quat: np.ndarray, t_src: np.ndarray, t_dst: np.ndarray) -> np.ndarray:
    """Slerp every body's (T, B, 4) wxyz track onto new times."""
    out = np.empty((len(t_dst), quat.shape[1], 4))
    for b in range(quat.shape[1]):
        slerp = Slerp(t_src, Rotation.from_quat(wxyz_to_xyzw(quat[:, b])))
        out[:, b] = xyzw_to_wxyz(slerp(t_dst).as_quat())
    out *= np.where(out[..., :1] < 0, -1.0, 1.0)  # w >= 0, one hemisphere
    return out


def resample(motion: RobotMotion, fps: float) -> RobotMotion:
    """The motion at another frame rate (the same motion when the rate already matches)."""
    if np.isclose(motion.fps, fps) or motion.frames < 2:
        return motion
    t_src = np.arange(motion.frames) / motion.fps
    t_dst = np.arange(int(np.floor(t_src[-1] * fps + 1e-9)) + 1) / fps

    def lerp(x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        return np.stack([np.interp(t_dst, t_src, flat[:, i]) for i in range(flat.shape[1])], 1).reshape(
            (len(t_dst),) + x.shape[1:])

    body_pos = lerp(motion.body_pos_w)
    body_quat = _resample_quats(motion.body_quat_w, t_src, t_dst)
    joint_pos = lerp(motion.joint_pos)
    return RobotMotion(fps=float(fps), joint_names=motion.joint_names, body_names=motion.body_names,
                       joint_pos=joint_pos, body_pos_w=body_pos, body_quat_w=body_quat,
                       object_pos_w=lerp(motion.object_pos_w), object_quat_w=_resample_quats(
                           motion.object_quat_w[:, None], t_src, t_dst)[:, 0],
                       contact=motion.contact[np.clip(np.round(t_dst * motion.fps).astype(int), 0, motion.frames - 1)],
                       contact_names=motion.contact_names, robot=motion.robot, object_name=motion.object_name,
                       source=motion.source, joint_vel=finite_difference(joint_pos, fps),
                       body_lin_vel_w=finite_difference(body_pos, fps), body_ang_vel_w=angular_velocity(body_quat, fps))


def motion_directory(path: Path | str) -> Path:
    """A motion is named by its directory (motion.npz + meta.json) or by its motion.npz."""
    path = Path(path)
    directory = path.parent if path.name == "motion.npz" else path
    if not (directory / "motion.npz").is_file():
        raise GrailError("no motion.npz here", file=directory / "motion.npz")
    return directory


def load_reference(path: Path | str, joint_names: list[str], body_names: list[str], fps: float,
                   name: str | None = None) -> Reference:
    """Read a robot motion, resample it to `fps` and order its joints and bodies by name."""
    directory = motion_directory(path)
    motion = resample(RobotMotion.load(directory), fps)
    j = _order(list(motion.joint_names), list(joint_names), directory / "meta.json", "joint_names")
    b = _order(list(motion.body_names), list(body_names), directory / "meta.json", "body_names")
    return Reference(name=name or directory.name, fps=float(fps), joint_names=list(joint_names),
                     body_names=list(body_names), joint_pos=motion.joint_pos[:, j], joint_vel=motion.joint_vel[:, j],
                     body_pos_w=motion.body_pos_w[:, b], body_quat_w=motion.body_quat_w[:, b],
                     body_lin_vel_w=motion.body_lin_vel_w[:, b], body_ang_vel_w=motion.body_ang_vel_w[:, b])
