"""Drop free bodies a little and let MuJoCo bring them to rest, so nothing floats or overlaps."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from grail.errors import GrailError


@dataclass
class SettleResult:
    poses: dict[str, tuple[np.ndarray, np.ndarray]]  # body name -> (pos, quat wxyz)
    simulated_s: float
    max_penetration_m: float


def free_joints(model: mujoco.MjModel) -> list[int]:
    """Ids of the model's free joints (one per free body)."""
    return [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]


def free_bodies(model: mujoco.MjModel) -> list[str]:
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.jnt_bodyid[j]) for j in free_joints(model)]


def max_penetration(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Deepest contact overlap among collision geoms (0 when nothing overlaps)."""
    if data.ncon == 0:
        return 0.0
    return float(max(0.0, -float(np.min(data.contact.dist[: data.ncon]))))


def pose_change(model: mujoco.MjModel, qpos_a: np.ndarray, qpos_b: np.ndarray) -> float:
    """The largest change of a free body's position (m) or orientation (rad) between two states."""
    change = 0.0
    for j in free_joints(model):
        a = model.jnt_qposadr[j]
        move = float(np.linalg.norm(qpos_b[a:a + 3] - qpos_a[a:a + 3]))
        dot = min(1.0, abs(float(np.dot(qpos_a[a + 3:a + 7], qpos_b[a + 3:a + 7]))))
        change = max(change, move, 2.0 * float(np.arccos(dot)))
    return change


def settle(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    max_time_s: float = 3.0,
    min_time_s: float = 0.4,
    rest_speed: float = 2e-3,
    rest_time_s: float = 0.2,
    angular_damping: float = 0.01,
    rest_drift: float = 0.005,
) -> SettleResult:
    """Simulate until every free body has stayed slower than `rest_speed` (m/s and rad/s) for
    `rest_time_s`; bodies start from the model's initial pose. One still faster after `max_time_s`
    is refused only if it also moved more than `rest_drift` (m, rad) over the last `rest_time_s`:
    a flat-bottomed mesh can rock in place on two contact points for ever (pickup_ground seed 4,
    a bottle: 0.041 rad/s after 3 s, turning 0.8 mrad over the last 0.2 s), and that is at rest.

    Free bodies get `angular_damping` (N m s/rad) on their rotation: settling looks for a resting
    pose, not for true dynamics, and without it a small round-bottomed object can rock on its
    convex parts for seconds (seen with MuJoCo 3.11 on pickup_table seed 1: 0.26 rad/s after 3 s).
    The model passed in is changed; build one for settling only."""
    names = free_bodies(model)
    for j in free_joints(model):
        model.dof_damping[model.jnt_dofadr[j] + 3:model.jnt_dofadr[j] + 6] = angular_damping
    mujoco.mj_forward(model, data)
    steps_needed = int(round(rest_time_s / model.opt.timestep))
    max_steps = int(round(max_time_s / model.opt.timestep))
    calm = 0
    speed = 0.0
    window_start = data.qpos.copy()
    for step in range(max_steps):
        if step == max_steps - steps_needed:
            window_start = data.qpos.copy()
        mujoco.mj_step(model, data)
        speed = float(np.max(np.abs(data.qvel))) if model.nv else 0.0
        calm = calm + 1 if speed < rest_speed else 0
        if calm >= steps_needed and step * model.opt.timestep >= min_time_s:
            break
    else:
        drift = pose_change(model, window_start, data.qpos)
        if speed > 20 * rest_speed and drift > rest_drift:
            raise GrailError(f"objects still moving after {max_time_s:.1f} s of settling (speed {speed:.3f}, "
                             f"moved {drift:.3f} in the last {rest_time_s:g} s)", field="settle")
    mujoco.mj_forward(model, data)
    poses = {}
    for name in names:
        body = model.body(name)
        poses[name] = (data.xpos[body.id].copy(), data.xquat[body.id].copy())
    return SettleResult(
        poses=poses,
        simulated_s=float(data.time),
        max_penetration_m=max_penetration(model, data),
    )
