"""sim2sim: run an exported tracking policy (``policy.onnx`` + ``policy.json``) in plain MuJoCo.

Training runs in mjlab (MuJoCo Warp, position actuators integrated implicitly); this check runs the
same ONNX graph in the MuJoCo C engine with a PD loop written out by hand, so a policy that only
works because of a quirk of the training simulator shows up here before it reaches the robot.

Choices (each mirrors the mjlab G1 tracking task unless it says otherwise):

- world: mjlab's packaged ``g1.xml`` plus a ground plane at z = 0 (friction 1.0); the foot capsules
  get condim 3, friction 0.6 and priority 1 (so 0.6 governs foot-ground contact), every other
  collision capsule condim 1, as mjlab's ``FULL_COLLISION`` sets them; timestep = card.physics_dt,
  integrator ``implicitfast``; joint armature from the card.
- actuation: ``g1.xml`` defines no actuators, so one *motor* per card joint is added (gear 1, ctrl
  range = +-effort limit). At every physics step tau = clip(kp (q* - q) - kd qdot, +-effort) is
  computed here and written to ``ctrl``: an explicit PD, unlike mjlab's implicit one, on purpose.
  q* = default_joint_pos + action_scale * action, held for `decimation` physics steps.
- observation: built term by term from the card (names and order); after the physics steps of a
  control step ``mj_forward`` runs once, as mjlab does, so sensors and body poses belong to the
  current state (``mj_step`` leaves them one substep stale).
- episode: reset puts the robot on reference frame 0 (root pose and velocity, joints); each control
  step advances the frame by one; the reference terms show the frame after the robot's (as mjlab's
  command advances right after a reset and after every step); metrics compare the robot with the
  frame of its own time; the episode ends on the motion's last frame (truncated) or on a
  fall by :func:`grail.tasks.tracking.metrics.failures` (terminated).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from grail.render.offscreen import select_gl_backend

select_gl_backend()  # before mujoco creates a GL context (video only)

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from grail.errors import GrailError  # noqa: E402
from grail.export.card import CARD_NAME, ONNX_NAME, PolicyCard, load_card  # noqa: E402
from grail.robot.model import g1_xml_path  # noqa: E402
from grail.rotations import matrix_from_quat  # noqa: E402
from grail.tasks.tracking.metrics import Rollout, SuccessCriteria, failures, rollout_metrics, summarise  # noqa: E402
from grail.tasks.tracking.reference import Reference, load_reference  # noqa: E402
from grail.tasks.tracking.video import add_reference_spheres  # noqa: E402

GROUND_FRICTION = (1.0, 0.005, 0.0001)
FOOT_FRICTION = 0.6
GYRO, VELOCIMETER = "imu_ang_vel", "imu_lin_vel"
VIDEO_SIZE = (480, 640)  # (height, width), even for H.264


# ----------------------------------------------------------------------------- world


def _is_foot(name: str) -> bool:
    return name.startswith(("left_foot", "right_foot")) and name.endswith("_collision")


def build_world(card: PolicyCard) -> mujoco.MjModel:
    """The G1 on a ground plane, with the card's armature and one torque motor per card joint."""
    spec = mujoco.MjSpec.from_file(str(g1_xml_path()))
    spec.option.timestep = card.physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.worldbody.add_geom(name="ground", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.01],
                            friction=list(GROUND_FRICTION), rgba=[0.3, 0.35, 0.4, 1])
    spec.worldbody.add_light(name="sun", pos=[0, 0, 3], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    for geom in spec.geoms:
        if _is_foot(geom.name):
            geom.condim, geom.priority = 3, 1
            geom.friction = [FOOT_FRICTION, *geom.friction[1:]]
        elif geom.name.endswith("_collision"):
            geom.condim = 1
    for name, armature, effort in zip(card.joint_names, card.armature, card.effort_limit):
        joint = spec.joint(name)
        if joint is None:
            raise GrailError(f"the G1 model has no joint {name!r}", file=CARD_NAME, field="joint_names")
        joint.armature = armature
        spec.add_actuator(name=name, trntype=mujoco.mjtTrn.mjTRN_JOINT, target=name, gear=[1, 0, 0, 0, 0, 0],
                          ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE, ctrlrange=[-effort, effort])
    return spec.compile()


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str, field: str) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    if i < 0:
        raise GrailError(f"the G1 model has no {kind.name.removeprefix('mjOBJ_').lower()} {name!r}",
                         file=CARD_NAME, field=field)
    return i


def _root_body(model: mujoco.MjModel) -> str:
    """The body that carries the free joint (the pelvis for the G1)."""
    free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    return model.body(model.jnt_bodyid[free[0]]).name


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def metric_bodies(card: PolicyCard) -> list[str]:
    """Bodies the metrics compare: the card's tracked bodies, plus the anchor if it is not one."""
    return _unique([*card.motion.tracked_bodies, card.motion.anchor_body])


@lru_cache(maxsize=1)
def _g1_root_body() -> str:
    return _root_body(mujoco.MjModel.from_xml_path(str(g1_xml_path())))


def reference_bodies(card: PolicyCard) -> list[str]:
    """Bodies a reference must carry: the metric bodies and the root (for the reset pose)."""
    return _unique([*metric_bodies(card), _g1_root_body()])


# ----------------------------------------------------------------------------- observation terms


Term = Callable[["MujocoTrackingEnv"], np.ndarray]


def _anchor_pos_b(env: "MujocoTrackingEnv") -> np.ndarray:
    """Reference anchor position in the robot anchor frame: R_robot^T (p_ref - p_robot)."""
    pos, quat = env.robot_anchor()
    return matrix_from_quat(quat).T @ (env.ref.body_pos_w[env.command_frame, env.ref_anchor] - pos)


def _anchor_ori_b(env: "MujocoTrackingEnv") -> np.ndarray:
    """First two columns of R_robot^T R_ref, row-major (mjlab: ``mat[..., :2].reshape(n, -1)``)."""
    _, quat = env.robot_anchor()
    rel = matrix_from_quat(quat).T @ matrix_from_quat(env.ref.body_quat_w[env.command_frame, env.ref_anchor])
    return rel[:, :2].reshape(-1)


# name -> (function of the env, size as a function of the joint count)
TERMS: dict[str, tuple[Term, Callable[[int], int]]] = {
    "motion_joint_pos": (lambda e: e.ref.joint_pos[e.command_frame], lambda j: j),
    "motion_joint_vel": (lambda e: e.ref.joint_vel[e.command_frame], lambda j: j),
    "command": (lambda e: np.concatenate([e.ref.joint_pos[e.command_frame], e.ref.joint_vel[e.command_frame]]),
                lambda j: 2 * j),
    "motion_anchor_pos_b": (_anchor_pos_b, lambda j: 3),
    "motion_anchor_ori_b": (_anchor_ori_b, lambda j: 6),
    "base_lin_vel": (lambda e: e.sensor(VELOCIMETER), lambda j: 3),
    "base_ang_vel": (lambda e: e.sensor(GYRO), lambda j: 3),
    "joint_pos": (lambda e: e.joint_pos() - e.default_pos, lambda j: j),
    "joint_vel": (lambda e: e.joint_vel(), lambda j: j),
    "actions": (lambda e: e.last_action, lambda j: j),
}


def resolve_terms(card: PolicyCard, card_file: Path | str = CARD_NAME) -> list[tuple[slice, Term]]:
    """(slice, function) per card term; unknown names and wrong sizes are bad cards."""
    out = []
    for i, term in enumerate(card.observation.terms):
        if term.name not in TERMS:
            raise GrailError(f"unknown observation term {term.name!r} (sim2sim knows: {', '.join(TERMS)})",
                             file=card_file, field=f"observation.terms.{i}.name")
        fn, size = TERMS[term.name]
        want = size(len(card.joint_names))
        if term.size != want:
            raise GrailError(f"term {term.name!r} has size {term.size}, expected {want}",
                             file=card_file, field=f"observation.terms.{i}.size")
        out.append((slice(term.start, term.start + term.size), fn))
    return out


# ----------------------------------------------------------------------------- environment


@dataclass
class _Log:
    """Per control step, what :class:`Rollout` needs."""

    body_pos: list[np.ndarray] = field(default_factory=list)
    anchor_quat: list[np.ndarray] = field(default_factory=list)
    joint_pos: list[np.ndarray] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)


class MujocoTrackingEnv(gym.Env):
    """One reference motion tracked by the G1 in plain MuJoCo; steps at the control rate."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, card: PolicyCard, reference: Reference, seed: int | None = None,
                 card_file: Path | str = CARD_NAME, init_joint_noise: float = 0.0,
                 criteria: SuccessCriteria = SuccessCriteria()):
        self.card, self.ref, self.criteria = card, reference, criteria
        self.init_joint_noise = float(init_joint_noise)
        self._check_reference(card_file)
        self.model = build_world(card)
        self.data = mujoco.MjData(self.model)
        self._terms = resolve_terms(card, card_file)
        self._index_model(card)
        self._index_reference(card, card_file)
        J, N = len(card.joint_names), card.observation.size
        self.kp, self.kd = np.asarray(card.kp), np.asarray(card.kd)
        self.effort, self.scale = np.asarray(card.effort_limit), np.asarray(card.action_scale)
        self.default_pos = np.asarray(card.default_joint_pos, dtype=np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (N,), np.float32)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (J,), np.float32)  # raw output, unclipped as in mjlab
        self.frame, self.last_action, self.target = 0, np.zeros(J), self.default_pos.copy()
        self.log = _Log()
        self.sim_seconds = 0.0
        if seed is not None:
            self.reset(seed=seed)

    # -- set-up

    def _check_reference(self, card_file: Path | str) -> None:
        if list(self.ref.joint_names) != list(self.card.joint_names):
            raise GrailError("the reference joints are not in the card's joint order", file=card_file,
                             field="joint_names")
        if not np.isclose(self.ref.fps * self.card.control_dt, 1.0, atol=1e-6):
            raise GrailError(f"reference at {self.ref.fps:g} fps, the policy runs at {1 / self.card.control_dt:g} Hz",
                             file=card_file, field="motion.fps")
        if self.ref.frames < 2:
            raise GrailError(f"the motion {self.ref.name!r} has {self.ref.frames} frame(s) at the control rate; "
                             "it needs at least 2", field="motion")

    def _index_model(self, card: PolicyCard) -> None:
        m, obj = self.model, mujoco.mjtObj
        joints = [_id(m, obj.mjOBJ_JOINT, n, "joint_names") for n in card.joint_names]
        self.qadr, self.vadr = m.jnt_qposadr[joints], m.jnt_dofadr[joints]
        root = _root_body(m)
        free = m.body_jntadr[_id(m, obj.mjOBJ_BODY, root, "robot")]
        self.root_name, self.root_q, self.root_v = root, m.jnt_qposadr[free], m.jnt_dofadr[free]
        self.body_names = metric_bodies(card)
        self.body_ids = np.array([_id(m, obj.mjOBJ_BODY, n, "motion.tracked_bodies") for n in self.body_names])
        self.anchor_index = self.body_names.index(card.motion.anchor_body)
        self.anchor_id = int(self.body_ids[self.anchor_index])
        ee = card.motion.end_effector_bodies
        bad = [n for n in ee if n not in self.body_names]
        if bad:
            raise GrailError(f"end-effector body {bad[0]!r} is not a tracked body", file=CARD_NAME,
                             field="motion.end_effector_bodies")
        self.ee_indices = tuple(self.body_names.index(n) for n in ee)
        self._sensors = {s: (m.sensor_adr[_id(m, obj.mjOBJ_SENSOR, s, "sensors")], m.sensor_dim[
            _id(m, obj.mjOBJ_SENSOR, s, "sensors")]) for s in (GYRO, VELOCIMETER)}

    def _index_reference(self, card: PolicyCard, card_file: Path | str) -> None:
        have = list(self.ref.body_names)
        missing = [n for n in [*self.body_names, self.root_name] if n not in have]
        if missing:
            raise GrailError(f"the reference {self.ref.name!r} has no body {missing[0]!r} (load it with "
                             "reference_bodies(card))", field="body_names")
        self.ref_bodies = np.array([have.index(n) for n in self.body_names])
        self.ref_anchor, self.ref_root = have.index(card.motion.anchor_body), have.index(self.root_name)

    # -- state accessors (the observation terms read these)

    def joint_pos(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    def joint_vel(self) -> np.ndarray:
        return self.data.qvel[self.vadr].copy()

    def sensor(self, name: str) -> np.ndarray:
        adr, dim = self._sensors[name]
        return self.data.sensordata[adr:adr + dim].copy()

    def robot_anchor(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.xpos[self.anchor_id].copy(), self.data.xquat[self.anchor_id].copy()

    def observation(self) -> np.ndarray:
        obs = np.empty(self.card.observation.size, dtype=np.float64)
        for where, fn in self._terms:
            obs[where] = fn(self)
        return obs.astype(np.float32)

    # -- gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Robot on reference frame 0 (root pose and velocity, joints), previous action zero."""
        super().reset(seed=seed)
        d, r, f = self.data, self.ref, 0
        mujoco.mj_resetData(self.model, d)
        quat = r.body_quat_w[f, self.ref_root]
        d.qpos[self.root_q:self.root_q + 3] = r.body_pos_w[f, self.ref_root]
        d.qpos[self.root_q + 3:self.root_q + 7] = quat / np.linalg.norm(quat)
        d.qvel[self.root_v:self.root_v + 3] = r.body_lin_vel_w[f, self.ref_root]
        # free-joint angular velocity is in the body frame; the reference stores it in the world frame
        d.qvel[self.root_v + 3:self.root_v + 6] = matrix_from_quat(quat).T @ r.body_ang_vel_w[f, self.ref_root]
        noise = self.np_random.uniform(-1, 1, len(self.qadr)) * self.init_joint_noise if self.init_joint_noise else 0.0
        d.qpos[self.qadr] = r.joint_pos[f] + noise
        d.qvel[self.vadr] = r.joint_vel[f]
        mujoco.mj_forward(self.model, d)
        self.frame, self.sim_seconds = f, 0.0
        self.last_action = np.zeros(len(self.qadr))
        self.target = self.default_pos.copy()
        self.log = _Log()
        return self.observation(), {"frame": f}

    @property
    def command_frame(self) -> int:
        """The reference frame the policy is shown: one ahead of the robot's state, as in mjlab, whose
        motion command advances right after placing the robot (reset) and after each step."""
        return min(self.frame + 1, self.ref.frames - 1)

    def pd_torque(self) -> np.ndarray:
        """Explicit PD toward the held target, clipped to the effort limits."""
        tau = self.kp * (self.target - self.data.qpos[self.qadr]) - self.kd * self.data.qvel[self.vadr]
        return np.clip(tau, -self.effort, self.effort)

    def step(self, action: np.ndarray):
        """One control step: new target, `decimation` PD + physics steps, forward, next frame."""
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise GrailError(f"action of shape {action.shape} (finite: {bool(np.all(np.isfinite(action)))}), "
                             f"expected {self.action_space.shape} finite values", field="action")
        self.target = self.default_pos + self.scale * action
        for _ in range(self.card.decimation):
            self.data.ctrl[:] = self.pd_torque()
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)  # sensors and body poses of the current state
        self.sim_seconds += self.card.control_dt
        self.last_action = action
        self.frame += 1
        self._record()
        fell = bool(failures(self._rollout(slice(-1, None)), self.criteria)[0])
        done = self.frame >= self.ref.frames - 1
        return self.observation(), 0.0, fell, done and not fell, {"frame": self.frame, "fell": fell}

    # -- logging and metrics

    def _record(self) -> None:
        self.log.body_pos.append(self.data.xpos[self.body_ids].copy())
        self.log.anchor_quat.append(self.data.xquat[self.anchor_id].copy())
        self.log.joint_pos.append(self.joint_pos())
        self.log.frames.append(self.frame)

    def _rollout(self, steps: slice = slice(None)) -> Rollout:
        frames = np.asarray(self.log.frames[steps])
        r = self.ref
        return Rollout(robot_body_pos=np.asarray(self.log.body_pos[steps]),
                       ref_body_pos=r.body_pos_w[frames][:, self.ref_bodies],
                       robot_anchor_quat=np.asarray(self.log.anchor_quat[steps]),
                       ref_anchor_quat=r.body_quat_w[frames, self.ref_anchor],
                       robot_joint_pos=np.asarray(self.log.joint_pos[steps]), ref_joint_pos=r.joint_pos[frames],
                       anchor_index=self.anchor_index, end_effector_indices=self.ee_indices,
                       motion_steps=r.frames - 1)

    def rollout(self) -> Rollout:
        """The episode so far (one entry per control step after the reset)."""
        if not self.log.frames:
            raise GrailError("no control step was taken since the reset", field="rollout")
        return self._rollout()

    def metrics(self) -> dict:
        return rollout_metrics(self.rollout(), self.criteria)


# ----------------------------------------------------------------------------- ONNX policy


class OnnxPolicy:
    """The exported graph on one CPU thread (as on the robot's computer); checks its shapes."""

    def __init__(self, policy_dir: Path, card: PolicyCard):
        import onnxruntime as ort

        path = Path(policy_dir) / ONNX_NAME
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise GrailError(f"cannot load the ONNX graph ({exc})", file=path) from None
        self._check(path, card)
        self.input, self.output = card.onnx_inputs[0], card.onnx_outputs[0]
        self.latencies_ns: list[int] = []
        self(np.zeros(card.observation.size, dtype=np.float32))  # warm-up, so timings are steady-state
        self.latencies_ns.clear()

    def _check(self, path: Path, card: PolicyCard) -> None:
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        name, out = card.onnx_inputs[0], card.onnx_outputs[0]
        if name not in inputs:
            raise GrailError(f"the graph has no input {name!r} (it has {', '.join(inputs)})", file=path, field=name)
        if out not in outputs:
            raise GrailError(f"the graph has no output {out!r} (it has {', '.join(outputs)})", file=path, field=out)
        checks = ((name, inputs[name], card.observation.size), (out, outputs[out], len(card.joint_names)))
        for what, shape, want in checks:
            last = shape[-1] if shape else None
            if isinstance(last, int) and last != want:
                raise GrailError(f"{what} has size {last} but policy.json says {want}", file=path, field=what)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter_ns()
        act = self.session.run([self.output], {self.input: obs.reshape(1, -1).astype(np.float32)})[0]
        self.latencies_ns.append(time.perf_counter_ns() - t0)
        return np.asarray(act, dtype=np.float64).reshape(-1)


# ----------------------------------------------------------------------------- video


class _Video:
    """Offscreen frames of the robot with the reference bodies as translucent spheres."""

    def __init__(self, env: MujocoTrackingEnv, path: Path, seconds: float):
        from grail.render.video_io import VideoWriter

        self.env, self.path = env, Path(path)
        self.max_frames = int(round(seconds / env.card.control_dt))
        h, w = VIDEO_SIZE
        env.model.vis.global_.offwidth, env.model.vis.global_.offheight = max(w, 640), max(h, 480)
        self.renderer = mujoco.Renderer(env.model, height=h, width=w)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        self.camera.trackbodyid = env.model.body(env.root_name).id
        self.camera.distance, self.camera.azimuth, self.camera.elevation = 3.0, 135.0, -15.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer = VideoWriter(self.tmp, 1.0 / env.card.control_dt, w, h)
        self.writer.__enter__()

    def capture(self) -> None:
        if self.writer.frames >= self.max_frames:
            return
        self.renderer.update_scene(self.env.data, camera=self.camera)
        scene, env = self.renderer.scene, self.env
        add_reference_spheres(scene, env.ref.body_pos_w[env.frame, env.ref_bodies])
        self.writer.write(self.renderer.render())

    def close(self, ok: bool) -> None:
        self.renderer.close()
        if ok:
            self.writer.close()
            os.replace(self.tmp, self.path)  # readers see a whole video or none
        else:
            self.writer.abort()


# ----------------------------------------------------------------------------- runner


def run_episode(env: MujocoTrackingEnv, policy: OnnxPolicy, seed: int,
                video: _Video | None = None) -> tuple[dict, float]:
    """One policy rollout to the end of the motion or a fall; (metrics, wall seconds in env.step)."""
    obs, _ = env.reset(seed=seed)
    step_s = 0.0
    if video:
        video.capture()
    while True:
        action = policy(obs)
        t0 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        step_s += time.perf_counter() - t0
        if video:
            video.capture()
        if terminated or truncated:
            return env.metrics(), step_s


def run_sim2sim(policy_dir: Path | str, motion_paths: Sequence[Path | str], episodes: int = 1,
                video: Path | None = None, seed: int = 0, video_seconds: float = 5.0,
                init_joint_noise: float = 0.0) -> dict:
    """Every motion, `episodes` times, with the ONNX policy; the metrics mjlab's evaluation reports
    (``summarise``) plus per-rollout rows and timing. `video` films the first rollout."""
    policy_dir = Path(policy_dir)
    card = load_card(policy_dir)
    if episodes < 1 or not motion_paths:
        raise GrailError("need at least one motion and one episode", field="episodes" if motion_paths else "motions")
    policy = OnnxPolicy(policy_dir, card)
    bodies = reference_bodies(card)
    per_motion: dict[str, list[dict]] = {}
    rows, sim_s, wall_s, steps = [], 0.0, 0.0, 0
    for path in motion_paths:
        ref = load_reference(path, card.joint_names, bodies, card.motion.fps)
        env = MujocoTrackingEnv(card, ref, card_file=policy_dir / CARD_NAME, init_joint_noise=init_joint_noise)
        for ep in range(episodes):
            filming = _Video(env, video, video_seconds) if video is not None and not rows else None
            ok = False
            try:
                metrics, seconds = run_episode(env, policy, seed + ep, filming)
                ok = True
            finally:
                if filming:
                    filming.close(ok)
            per_motion.setdefault(ref.name, []).append(metrics)
            rows.append({"motion": ref.name, "episode": ep, **metrics})
            sim_s, wall_s, steps = sim_s + env.sim_seconds, wall_s + seconds, steps + len(env.log.frames)
        env.close()
    lat_us = np.asarray(policy.latencies_ns) / 1e3
    timing = {"control_steps": steps, "policy_inference_us_mean": float(lat_us.mean()),
              "policy_inference_us_p99": float(np.percentile(lat_us, 99)),
              "env_steps_per_s": steps / max(wall_s, 1e-12), "sim_real_time_factor": sim_s / max(wall_s, 1e-12)}
    return {**summarise(per_motion), "per_rollout": rows, "timing": timing, "policy": str(policy_dir),
            "video": str(video) if video is not None else None}
