"""Tracking metrics from logged rollouts, in numpy, shared by the mjlab evaluation and sim2sim.

Both simulators log the same arrays per control step and call :func:`rollout_metrics`, so the
figures they report differ only where the simulators do. Fall criteria follow BeyondMimic's
terminations as mjlab configures them for the G1 (anchor height error 0.25 m, projected-gravity
z error 0.8, end-effector height error 0.25 m).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from grail.rotations import matrices_from_quats


@dataclass(frozen=True)
class SuccessCriteria:
    """A rollout succeeds when it never falls and its mean local body error stays below a bound."""

    anchor_height_m: float = 0.25
    gravity_z: float = 0.8
    end_effector_height_m: float = 0.25
    body_error_m: float = 0.25

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Rollout:
    """Per control step (T steps, B tracked bodies, J joints), robot next to reference."""

    robot_body_pos: np.ndarray   # (T, B, 3) world
    ref_body_pos: np.ndarray     # (T, B, 3) world
    robot_anchor_quat: np.ndarray  # (T, 4) wxyz
    ref_anchor_quat: np.ndarray    # (T, 4) wxyz
    robot_joint_pos: np.ndarray  # (T, J)
    ref_joint_pos: np.ndarray    # (T, J)
    anchor_index: int
    end_effector_indices: tuple[int, ...]
    motion_steps: int            # control steps the whole motion lasts


def _yaw_frames(quat: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations about z with the heading of each quaternion."""
    R = matrices_from_quats(quat)
    yaw = np.arctan2(R[:, 1, 0], R[:, 0, 0])
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def local_body_positions(body_pos: np.ndarray, anchor_index: int, anchor_quat: np.ndarray) -> np.ndarray:
    """Body positions relative to the anchor body, in its heading frame (T, B, 3)."""
    rel = body_pos - body_pos[:, anchor_index:anchor_index + 1]
    return np.einsum("tji,tbj->tbi", _yaw_frames(anchor_quat), rel)


def _projected_gravity_z(quat: np.ndarray) -> np.ndarray:
    return -matrices_from_quats(quat)[:, 2, 2]


def failures(r: Rollout, c: SuccessCriteria) -> np.ndarray:
    """Per-step fall flags (T,) by the termination criteria."""
    a = r.anchor_index
    anchor = np.abs(r.ref_body_pos[:, a, 2] - r.robot_body_pos[:, a, 2]) > c.anchor_height_m
    gravity = np.abs(_projected_gravity_z(r.ref_anchor_quat) - _projected_gravity_z(r.robot_anchor_quat)) > c.gravity_z
    ee = list(r.end_effector_indices)
    ee_fail = (np.abs(r.ref_body_pos[:, ee, 2] - r.robot_body_pos[:, ee, 2]) > c.end_effector_height_m).any(axis=1) \
        if ee else np.zeros(len(anchor), bool)
    return anchor | gravity | ee_fail


def rollout_metrics(r: Rollout, c: SuccessCriteria = SuccessCriteria()) -> dict:
    """Success, MPJPE of local body positions (mm), joint error (rad), progress; scored up to the
    first fall (inclusive), as the episode ends there."""
    fail = failures(r, c)
    fell = bool(fail.any())
    steps = int(np.argmax(fail)) + 1 if fell else len(fail)
    local_robot = local_body_positions(r.robot_body_pos[:steps], r.anchor_index, r.robot_anchor_quat[:steps])
    local_ref = local_body_positions(r.ref_body_pos[:steps], r.anchor_index, r.ref_anchor_quat[:steps])
    body_err = np.linalg.norm(local_robot - local_ref, axis=-1)          # (t, B)
    joint_err = np.abs(r.robot_joint_pos[:steps] - r.ref_joint_pos[:steps])  # (t, J)
    progress = min(1.0, steps / max(r.motion_steps, 1)) if fell else min(1.0, len(fail) / max(r.motion_steps, 1))
    success = (not fell) and progress >= 1.0 and bool(body_err.mean(axis=1).max() < c.body_error_m)
    return {"success": success, "fell": fell, "progress": float(progress), "steps": steps,
            "mpjpe_local_mm": float(body_err.mean() * 1000.0),
            "max_body_error_m": float(body_err.mean(axis=1).max()),
            "joint_pos_error_rad": float(joint_err.mean()),
            "global_anchor_error_m": float(np.linalg.norm(
                r.robot_body_pos[:steps, r.anchor_index] - r.ref_body_pos[:steps, r.anchor_index], axis=-1).mean())}


def summarise(per_motion: dict[str, list[dict]]) -> dict:
    """Per motion and overall means of the rollout metrics (success as a rate)."""
    def mean(rows: list[dict]) -> dict:
        keys = ("progress", "mpjpe_local_mm", "max_body_error_m", "joint_pos_error_rad", "global_anchor_error_m")
        out = {"rollouts": len(rows), "success_rate": float(np.mean([r["success"] for r in rows])),
               "fall_rate": float(np.mean([r["fell"] for r in rows]))}
        out.update({k: float(np.mean([r[k] for r in rows])) for k in keys})
        return out
    motions = {name: mean(rows) for name, rows in per_motion.items() if rows}
    every = [r for rows in per_motion.values() for r in rows]
    return {"motions": motions, "overall": mean(every) if every else {}}
