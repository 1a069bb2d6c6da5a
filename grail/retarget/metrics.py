"""Quality of a retargeted motion, measured on the robot in its scene with MuJoCo.

Figures: IK residual per task (mm, deg), joint-limit and velocity-limit violations, stance-foot
slide (cm/s), penetration of the ground/terrain/furniture and of the objects (mm, from MuJoCo's
contact distances), hand-to-object error while in contact (the robot palm against the character's
palm, both in the object's frame, mm), self-collisions, and the seated-pelvis gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from grail.retarget.source import HumanMotion
from grail.retarget.surfaces import HandGeometry, ObjectSurface
from grail.retarget.targets import SIDES, Targets, intervals
from grail.robot.g1 import RobotSpec
from grail.robot.scene import RobotScene
from grail.rotations import matrices_from_quats

LIMIT_TOLERANCE = 1e-3      # rad: solver round-off is not a violation
SELF_CONTACT_MIN_MM = 1.0   # deeper robot-robot overlaps count as self-collisions


@dataclass
class Bounds:
    """Quality targets of the retarget stage (issue 4)."""

    hand_object_error_mean_mm: float = 20.0
    foot_slide_max_cm_s: float = 1.0
    penetration_max_mm: float = 10.0
    joint_limit_violations: int = 0
    velocity_limit_violations: int = 0


def robot_frames(model: mujoco.MjModel, Q: np.ndarray, frames: dict[str, tuple[str, str]]) -> dict[str, tuple]:
    """World positions (T,3) and rotations (T,3,3) of named frames along a motion."""
    data = mujoco.MjData(model)
    ids = {k: (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE if kind == "site" else mujoco.mjtObj.mjOBJ_BODY, f), kind)
           for k, (f, kind) in frames.items()}
    pos = {k: np.zeros((len(Q), 3)) for k in frames}
    rot = {k: np.zeros((len(Q), 3, 3)) for k in frames}
    for t, q in enumerate(Q):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for k, (i, kind) in ids.items():
            if kind == "site":
                pos[k][t], rot[k][t] = data.site_xpos[i], data.site_xmat[i].reshape(3, 3)
            else:
                pos[k][t], rot[k][t] = data.xpos[i], data.xmat[i].reshape(3, 3)
    return {k: (pos[k], rot[k]) for k in frames}


def retarget_metrics(Q: np.ndarray, joint_pos: np.ndarray, fps: float, robot: RobotSpec, model: mujoco.MjModel,
                     frames: dict[str, tuple[str, str]], targets: Targets, motion: HumanMotion,
                     scene: RobotScene, surfaces: dict[int, ObjectSurface], hands: dict[str, HandGeometry]) -> dict:
    """Every figure of the module docstring, plus a flat ``summary`` that the library filters on."""
    poses = robot_frames(model, Q, frames)
    residual = _residuals(poses, targets)
    limits = _limit_violations(joint_pos, fps, robot)
    slide = _foot_slide(poses, targets, fps)
    contact = _contacts(scene, Q, motion)
    hand = _hand_object_error(poses, targets, motion, surfaces, hands)
    summary = {
        "ik_residual_mean_mm": round(float(np.mean([r["position_mean_mm"] for r in residual.values()
                                                     if r.get("position_mean_mm") is not None])), 2),
        "hand_object_error_mean_mm": hand["mean_mm"], "hand_object_error_max_mm": hand["max_mm"],
        "foot_slide_max_cm_s": slide["max_cm_s"], "penetration_max_mm": contact["scene_penetration_max_mm"],
        "object_penetration_max_mm": contact["object_penetration_max_mm"],
        "joint_limit_violations": limits["position_violations"],
        "velocity_limit_violations": limits["velocity_violations"], "self_collisions": contact["self_collision_frames"],
    }
    return {"summary": summary, "ik_residual": residual, "limits": limits, "foot_slide": slide,
            "contacts": contact, "hand_object": hand, "frames": int(len(Q)), "fps": fps}


def check(summary: dict, bounds: Bounds | None = None) -> list[str]:
    """Violations of the quality targets, one line each (empty when the motion passes)."""
    bounds = bounds or Bounds()
    out = []
    for key, limit in vars(bounds).items():
        value = summary.get(key)
        if value is not None and value > limit:
            out.append(f"{key} {value} > {limit}")
    return out


def _residuals(poses: dict, targets: Targets) -> dict:
    out = {}
    for name, ft in targets.frames.items():
        pos, rot = poses[name]
        entry: dict = {}
        used = ft.position_cost > 0
        if used.any():
            err = 1000 * np.linalg.norm(pos - ft.position, axis=1)[used]
            entry |= {"position_mean_mm": round(float(err.mean()), 2), "position_max_mm": round(float(err.max()), 2)}
        if ft.quat is not None and (ft.orientation_cost > 0).any():
            used = ft.orientation_cost > 0
            R_target = matrices_from_quats(ft.quat[used])
            rel = np.einsum("tji,tjk->tik", rot[used], R_target)
            cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)
            deg = np.degrees(np.arccos(cos))
            entry |= {"orientation_mean_deg": round(float(deg.mean()), 2), "orientation_max_deg": round(float(deg.max()), 2)}
        out[name] = entry
    return out


def _limit_violations(joint_pos: np.ndarray, fps: float, robot: RobotSpec) -> dict:
    below = joint_pos < robot.lower - LIMIT_TOLERANCE
    above = joint_pos > robot.upper + LIMIT_TOLERANCE
    vel = np.abs(np.diff(joint_pos, axis=0)) * fps
    fast = vel > robot.velocity_limit
    worst = int(np.argmax((vel / robot.velocity_limit).max(axis=0))) if len(vel) else 0
    return {"position_violations": int(below.sum() + above.sum()), "velocity_violations": int(fast.sum()),
            "max_velocity_ratio": round(float((vel / robot.velocity_limit).max()) if len(vel) else 0.0, 3),
            "max_velocity_joint": robot.joint_names[worst],
            "joints_violating": sorted({robot.joint_names[j] for j in np.flatnonzero((below | above).any(0))})}


def _foot_slide(poses: dict, targets: Targets, fps: float) -> dict:
    """Horizontal speed of each foot site over consecutive stance frames (sliding, as the generate
    stage measures skating), and how far a planted foot rises or tilts from its stance pose."""
    speeds, lifts, tilts = [], [0.0], [0.0]
    for side in SIDES:
        pos, rot = poses[f"{side}_foot"]
        stance = targets.stance[side]
        both = stance[1:] & stance[:-1]
        speeds.append(100 * fps * np.linalg.norm(np.diff(pos[:, :2], axis=0), axis=1)[both])
        for start, end in intervals(stance):
            lifts.append(1000 * float(np.ptp(pos[start:end, 2])))
            up = rot[start:end, :, 2]
            tilts.append(float(np.degrees(np.arccos(np.clip(up @ up[0], -1, 1))).max()))
    v = np.concatenate(speeds)
    return {"max_cm_s": round(float(v.max()), 3) if len(v) else 0.0,
            "mean_cm_s": round(float(v.mean()), 3) if len(v) else 0.0, "stance_frames": int(len(v)),
            "stance_lift_max_mm": round(max(lifts), 2), "stance_tilt_max_deg": round(max(tilts), 2)}


def _contacts(scene: RobotScene, Q: np.ndarray, motion: HumanMotion) -> dict:
    """Robot-vs-scene and robot-vs-robot contact depths per frame, with the objects where the motion has them."""
    model, data = scene.model, mujoco.MjData(scene.model)
    robot_geom = np.isin(model.geom_bodyid, scene.robot_bodies)
    object_bodies = {model.body(name).id for name in motion.object_names if name in scene.object_qpos}
    scene_depth, object_depth, self_frames, self_pairs = np.zeros(len(Q)), np.zeros(len(Q)), 0, set()
    where: dict[str, float] = {}
    for t, q in enumerate(Q):
        objects = {n: (motion.object_pos[t, i], motion.object_quat[t, i]) for i, n in enumerate(motion.object_names)
                   if n in scene.object_qpos}
        scene.set_state(data, q, objects)
        mujoco.mj_collision(model, data)
        hit_self = False
        for c in data.contact[:data.ncon]:
            depth = -1000 * c.dist
            if depth <= 0:
                continue
            g1, g2 = c.geom
            r1, r2 = robot_geom[g1], robot_geom[g2]
            if r1 and r2:
                if depth > SELF_CONTACT_MIN_MM:
                    hit_self = True
                    self_pairs.add(tuple(sorted((model.geom(g1).name, model.geom(g2).name))))
            elif r1 or r2:
                other = g2 if r1 else g1
                mine = g1 if r1 else g2
                if model.geom_bodyid[other] in object_bodies:
                    object_depth[t] = max(object_depth[t], depth)
                else:
                    scene_depth[t] = max(scene_depth[t], depth)
                    key = f"{model.geom(mine).name.removeprefix('robot/')}|{model.body(model.geom_bodyid[other]).name}"
                    where[key] = max(where.get(key, 0.0), round(depth, 2))
        self_frames += hit_self
    worst = sorted(where.items(), key=lambda kv: -kv[1])[:5]
    return {"scene_penetration_max_mm": round(float(scene_depth.max()), 2),
            "scene_penetration_frames_over_10mm": int((scene_depth > 10).sum()),
            "object_penetration_max_mm": round(float(object_depth.max()), 2),
            "self_collision_frames": int(self_frames), "self_collision_pairs": sorted(map("|".join, self_pairs)),
            "deepest": dict(worst)}


def _hand_object_error(poses: dict, targets: Targets, motion: HumanMotion, surfaces: dict[int, ObjectSurface],
                       hands: dict[str, HandGeometry]) -> dict:
    """Over frames in contact: how far the robot's contact point on the object is from the
    character's (both the surface point nearest the palm, in the object's frame), and the gap
    between the robot's palm surface and the object (negative: inside)."""
    errors, gaps = [], []
    for side in SIDES:
        touching = motion.contact_object[f"{side}_hand"]
        frames = np.flatnonzero(motion.contact[f"{side}_hand"] & (touching >= 0))
        for k in np.unique(touching[frames]):
            if k not in surfaces:
                continue
            f = frames[touching[frames] == k]
            R = matrices_from_quats(motion.object_quat[f, k])
            p = motion.object_pos[f, k]
            robot_local = np.einsum("tji,tj->ti", R, poses[f"{side}_hand"][0][f] - p)
            human_local = np.einsum("tji,tj->ti", R, targets.palm_reference[side][f] - p)
            robot_point, normal = surfaces[k].nearest(robot_local)  # normal points out, also from inside
            human_point, _ = surfaces[k].nearest(human_local)
            errors.append(1000 * np.linalg.norm(robot_point - human_point, axis=1))
            height = np.sum((robot_local - robot_point) * normal, axis=1)  # palm site above the surface
            gaps.append(1000 * (height - hands[side].depth))
    if not errors:
        return {"mean_mm": None, "max_mm": None, "frames": 0, "gap_mean_mm": None, "gap_max_mm": None}
    e, g = np.concatenate(errors), np.concatenate(gaps)
    return {"mean_mm": round(float(e.mean()), 2), "max_mm": round(float(e.max()), 2), "frames": int(len(e)),
            "gap_mean_mm": round(float(g.mean()), 2), "gap_max_mm": round(float(np.abs(g).max()), 2)}
