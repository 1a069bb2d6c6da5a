"""Differential IK with mink on the G1 model: weighted frame tasks, posture, joint limits, and
hard collision constraints against the robot's own trunk and the scene.

Each frame starts from the previous frame's solution (warm start) and takes a few IK steps whose
joint velocities are bounded by the motor limits over the frame's duration, so the result never
moves a joint faster than the robot can. The first frame is solved to convergence from the
robot's default pose. The model may be the robot alone or the robot (names prefixed) in a frozen
copy of its scene; in both the configuration is the robot's own qpos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import mink
import mujoco
import numpy as np

from grail.retarget.frame_limit import PerFrameLimit
from grail.retarget.points_task import PointsTask
from grail.retarget.targets import Targets, TaskWeights
from grail.robot.g1 import G1, RobotSpec
from grail.robot.model import HEAD_CAMERA, joint_qpos_indices

def robot_frames(robot: RobotSpec = G1) -> dict[str, tuple[str, str]]:
    """The robot frame each target drives: target name -> (name in the robot model, body|site)."""
    frames = {"pelvis": (robot.root_body, "body"), "torso": (robot.torso_body, "body"), "head": (HEAD_CAMERA, "site")}
    for side in ("left", "right"):
        frames |= {f"{side}_foot": (robot.foot_sites[side], "site"), f"{side}_knee": (robot.knee_bodies[side], "body"),
                   f"{side}_elbow": (robot.elbow_bodies[side], "body"), f"{side}_wrist": (robot.hand_bodies[side], "body"),
                   f"{side}_hand": (robot.palm_sites[side], "site")}
    return frames


ROBOT_FRAMES = robot_frames(G1)
#: Position-only targets, solved as one stacked task (a FrameTask each would cost twice the time).
POINT_TARGETS = tuple(f"{s}_{part}" for part in ("knee", "elbow", "wrist") for s in ("left", "right"))
#: Robot geoms kept off the scene (feet only while they swing: the stance targets put them on
#: their support).
SCENE_AVOIDING = ("pelvis", "torso", "head", "left_hip", "right_hip", "left_thigh", "right_thigh", "left_shin",
                  "right_shin", "left_linkage_brace", "right_linkage_brace", "left_shoulder_yaw", "right_shoulder_yaw",
                  "left_elbow_yaw", "right_elbow_yaw", "left_wrist", "right_wrist", "left_hand", "right_hand")
COLLISION_GAIN = 0.85          # share of the remaining gap a step may close
SELF_MARGIN_M = 0.015          # kept between the robot's links (the constraint is linearised: a
SCENE_MARGIN_M = 0.005         # turning capsule can close a few mm more within one step)
SWING_MARGIN_M = 0.0
OBJECT_MARGIN_M = 0.0          # a hand in contact is placed CONTACT_GAP (2 mm) off the object
COLLISION_DETECT_M = 0.08      # pairs further apart than this are not constrained (a hand moves
SELF_DETECT_M = 0.05           # under 3 cm in one IK step)


@dataclass
class SolverOptions:
    iterations: int = 2             # IK steps per frame (warm-started)
    first_frame_iterations: int = 40
    solver: str = "daqp"
    damping: float = 1e-3
    velocity_margin: float = 0.95   # fraction of the motor velocity limit the IK may use
    polish_steps: int = 6           # extra steps while a planted foot is off its pose by more than
    planted_tolerance: float = 3e-4  # this (m)
    converged: float = 2e-4         # a step moving no coordinate more than this (rad or m) ends the frame
    self_collision: bool = True     # arms off the trunk and legs, trunk off the thighs, leg off leg
    scene_collision: bool = True    # keep the body (not the feet) off the ground, terrain and furniture


def self_collision_pairs(model: mujoco.MjModel, prefix: str = "") -> list[tuple[list[str], list[str]]]:
    """Arms against the trunk and legs, the trunk against the thighs, and one leg against the
    other: the overlaps a child's arm swing, reach, deep squat or turn on the spot would cause on
    the G1's bulkier links."""
    names = {model.geom(g).name for g in range(model.ngeom)}

    def have(*geoms: str) -> list[str]:
        return [prefix + g + "_collision" for g in geoms if prefix + g + "_collision" in names]

    def leg(side: str) -> list[str]:
        return have(f"{side}_shin", f"{side}_linkage_brace", *(f"{side}_foot{i}" for i in range(1, 8)))

    pairs = [(leg("left"), leg("right"))]
    for side in ("left", "right"):
        arm = have(f"{side}_hand", f"{side}_wrist", f"{side}_elbow_yaw", f"{side}_shoulder_yaw")
        pairs.append((arm, have("pelvis", "torso", f"{side}_hip", f"{side}_thigh", f"{side}_shin")))
        pairs.append((have("torso"), have(f"{side}_thigh", f"{side}_shoulder_yaw")))
    return pairs


def scene_collision_pairs(model: mujoco.MjModel, prefix: str, parts: tuple[str, ...] = SCENE_AVOIDING,
                          objects: bool = False) -> list[tuple[list[int], list[int]]]:
    """Robot collision geoms whose names start with `parts` against the collision geoms of the
    frozen scene (or, with `objects`, of the mocap-driven objects)."""
    robot = [g for g in range(model.ngeom) if model.geom(g).name.endswith("_collision")
             and model.geom(g).name.removeprefix(prefix).startswith(parts) and model.geom(g).name.startswith(prefix)]
    scene = [g for g in range(model.ngeom) if not model.body(model.geom_bodyid[g]).name.startswith(prefix)
             and (model.geom_contype[g] or model.geom_conaffinity[g])
             and (model.body_mocapid[model.geom_bodyid[g]] >= 0) == objects] if prefix else []
    return [(robot, scene)] if robot and scene else []


class Retargeter:
    """Solves the robot's configuration frame by frame for a set of targets."""

    def __init__(self, model: mujoco.MjModel, weights: TaskWeights, options: SolverOptions | None = None,
                 robot: RobotSpec = G1, prefix: str = "") -> None:
        self.model, self.weights, self.options, self.robot = model, weights, options or SolverOptions(), robot
        self.prefix = prefix
        self.configuration = mink.Configuration(model)
        frames = robot_frames(robot)
        self.tasks = {name: mink.FrameTask(prefix + frame, kind, position_cost=1.0, orientation_cost=1.0, lm_damping=1.0)
                      for name, (frame, kind) in frames.items() if name not in POINT_TARGETS}
        self.points = PointsTask(model, [(prefix + frames[n][0], frames[n][1]) for n in POINT_TARGETS])
        self.posture = mink.PostureTask(model, cost=weights.posture)
        margin = self.options.velocity_margin
        self.limits = [mink.ConfigurationLimit(model),
                       mink.VelocityLimit(model, {prefix + j: margin * v for j, v in zip(robot.joint_names, robot.velocity_limit)})]
        self.qpos_index = joint_qpos_indices(model, robot, prefix)
        self.fallbacks = 0  # IK steps in which the planted feet could not be met exactly

    def initial_qpos(self, targets: Targets) -> np.ndarray:
        """Default pose standing at the first pelvis target."""
        q = self.model.qpos0.copy()
        _, joints = self.robot.default_pose("knees_bent")
        q[:3] = targets.frames["pelvis"].position[0]
        q[3:7] = targets.frames["pelvis"].quat[0]
        q[self.qpos_index] = joints
        return q

    def solve(self, targets: Targets, fps: float, progress: Callable[[int, int], None] | None = None,
              objects: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
        """(T, nq) configurations, one per frame; `objects` poses the model's mocap bodies
        (name -> positions (T,3), wxyz quaternions (T,4)) so the body keeps out of them."""
        T = len(targets.frames["pelvis"].position)
        q = self.initial_qpos(targets)
        self.configuration.update(q)
        self.posture.set_target(q)
        out = np.zeros((T, self.model.nq))
        dt = 1.0 / fps
        opts = self.options
        first_limits = self.limits[:1] + self._collision_limits(dt / opts.first_frame_iterations)
        limits = self.limits + self._collision_limits(dt / opts.iterations)
        swing_limits = {side: self._swing_foot_limit(side, dt / opts.iterations) for side in ("left", "right")}
        mocap = {name: self.model.body_mocapid[body] for name in (objects or {})
                 if (body := mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)) >= 0
                 and self.model.body_mocapid[body] >= 0}
        self._pack(targets)
        for t in range(T):
            self._set_targets(t)
            self._pose_objects(mocap, objects or {}, t)
            swinging = [lim for side, lim in swing_limits.items() if lim is not None and not targets.stance[side][t]]
            steps, active = (opts.first_frame_iterations, first_limits) if t == 0 else (opts.iterations, limits + swinging)
            planted = {f"{side}_foot" for side in ("left", "right") if t and targets.stance[side][t]}
            self._solve_frame(planted, dt / steps, steps, active)
            out[t] = self.configuration.q
            if progress:
                progress(t + 1, T)
        return out

    def _pose_objects(self, mocap: dict[str, int], objects: dict[str, tuple[np.ndarray, np.ndarray]], t: int) -> None:
        for name, m in mocap.items():
            self.configuration.data.mocap_pos[m], self.configuration.data.mocap_quat[m] = objects[name][0][t], objects[name][1][t]
        if mocap:
            self.configuration.update()

    def _solve_frame(self, planted: set[str], step_dt: float, steps: int, active: list) -> None:
        """Up to `steps` IK steps (fewer once a step hardly moves), then polish steps while a
        planted foot is still off its pose: the equality constraint is linear, so a fast frame
        leaves a planted foot a few mm off."""
        opts = self.options
        cached = [lim for lim in active if isinstance(lim, PerFrameLimit)]
        for lim in cached:
            lim.new_frame()

        def advance(limits: list) -> np.ndarray:
            v = self._step(planted, step_dt, limits)
            self.configuration.integrate_inplace(v, step_dt)
            for lim in cached:
                lim.advanced(v * step_dt)
            return v

        for _ in range(steps):
            if np.max(np.abs(advance(active))) * step_dt < opts.converged:
                break  # warm-started frames usually settle in one or two steps
        for _ in range(opts.polish_steps):
            if max((np.linalg.norm(self.tasks[n].compute_error(self.configuration)[:3]) for n in planted),
                   default=0.0) < opts.planted_tolerance:
                break
            advance([lim for lim in active if not isinstance(lim, mink.VelocityLimit)])

    def _step(self, planted: set[str], step_dt: float, limits: list) -> np.ndarray:
        """One IK step. A planted foot's task is an equality constraint (its locked stance pose is
        met exactly, so no other task can make it slide); when that leaves no feasible step
        (another hard constraint in the way) it falls back to its heavily weighted task."""
        opts = self.options
        soft = [task for name, task in self.tasks.items() if name not in planted] + [self.points, self.posture]
        hard = [self.tasks[name] for name in planted]
        try:
            return mink.solve_ik(self.configuration, soft, step_dt, opts.solver, damping=opts.damping, limits=limits,
                                 constraints=hard or None)
        except mink.NoSolutionFound:
            self.fallbacks += 1
            return mink.solve_ik(self.configuration, soft + hard, step_dt, opts.solver, damping=opts.damping,
                                 limits=limits)

    def _collision_limits(self, step_dt: float) -> list:
        """mink bounds the approach per step by gain * (distance - margin) / dt while its QP
        variable is a displacement, so the gain is scaled by dt here to allow at most
        COLLISION_GAIN of the remaining gap per step (otherwise a hand swinging past the hip
        tunnels through it in one step)."""
        limits = []
        if self.options.self_collision:  # few pairs, turning links: measured at every step
            limits.append(mink.CollisionAvoidanceLimit(
                self.model, self_collision_pairs(self.model, self.prefix), gain=min(1.0, COLLISION_GAIN * step_dt),
                minimum_distance_from_collisions=SELF_MARGIN_M, collision_detection_distance=SELF_DETECT_M))
        for objects, margin in ((False, SCENE_MARGIN_M), (True, OBJECT_MARGIN_M)):
            pairs = scene_collision_pairs(self.model, self.prefix, objects=objects) if self.options.scene_collision else []
            if pairs:  # many pairs against furniture and object meshes: measured once per frame
                limits.append(PerFrameLimit(mink.CollisionAvoidanceLimit(
                    self.model, pairs, gain=min(1.0, COLLISION_GAIN * step_dt), minimum_distance_from_collisions=margin,
                    collision_detection_distance=COLLISION_DETECT_M), COLLISION_GAIN))
        return limits

    def _swing_foot_limit(self, side: str, step_dt: float):
        """A swinging foot stays above treads, curbs and the ground (a stance foot is placed on
        its support by its target instead, so the constraint is left out while it stands)."""
        if not self.options.scene_collision:
            return None
        pairs = scene_collision_pairs(self.model, self.prefix, (f"{side}_foot",))
        if not pairs:
            return None
        return PerFrameLimit(mink.CollisionAvoidanceLimit(
            self.model, pairs, gain=min(1.0, COLLISION_GAIN * step_dt), minimum_distance_from_collisions=SWING_MARGIN_M,
            collision_detection_distance=COLLISION_DETECT_M), COLLISION_GAIN)

    def _pack(self, targets: Targets) -> None:
        """Per-task arrays of target poses (wxyz + xyz) and costs, read frame by frame in solve."""
        self._poses, self._costs = {}, {}
        for name in self.tasks:
            ft = targets.frames[name]
            quat = ft.quat if ft.quat is not None else np.tile([1.0, 0, 0, 0], (len(ft.position), 1))
            self._poses[name] = np.concatenate([quat / np.linalg.norm(quat, axis=1, keepdims=True), ft.position], axis=1)
            orientation = ft.orientation_cost if ft.quat is not None else np.zeros(len(ft.position))
            self._costs[name] = np.repeat(np.stack([ft.position_cost, orientation], axis=1), 3, axis=1)
        self._points = (np.stack([targets.frames[n].position for n in POINT_TARGETS], axis=1),
                        np.stack([targets.frames[n].position_cost for n in POINT_TARGETS], axis=1))

    def _set_targets(self, t: int) -> None:
        self.points.set_targets(self._points[0][t], self._points[1][t])
        for name, task in self.tasks.items():
            task.transform_target_to_world = mink.SE3(wxyz_xyz=self._poses[name][t])
            task.cost[:] = self._costs[name][t]
