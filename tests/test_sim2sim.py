"""sim2sim: an ONNX tracking policy for the G1 in plain MuJoCo behind a gymnasium env.

Policies here are tiny torch MLPs exported in the test (random or fixed weights); the card uses the
real G1 numbers (gains and effort limits from grail.robot.g1, armature from kp = armature * w^2 with
mjlab's 10 Hz natural frequency, action scale 0.25 * effort / kp as mjlab sets it).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from grail.errors import GrailError  # noqa: E402
from grail.export.card import (CARD_NAME, ONNX_NAME, Latent, MotionSpec, Observation,  # noqa: E402
                               ObservationTerm, PolicyCard)
from grail.export.sim2sim import MujocoTrackingEnv, reference_bodies, resolve_terms, run_sim2sim  # noqa: E402
from grail.library.formats import motion_from_root_and_joints  # noqa: E402
from grail.robot.g1 import G1  # noqa: E402
from grail.tasks.tracking.reference import load_reference  # noqa: E402

J = G1.dof
LATENT = 8
NATURAL_FREQ = 10 * 2.0 * math.pi
TRACKED = ("pelvis", "left_hip_roll_link", "left_knee_link", "left_ankle_roll_link", "right_hip_roll_link",
           "right_knee_link", "right_ankle_roll_link", "torso_link", "left_shoulder_roll_link", "left_elbow_link",
           "left_wrist_yaw_link", "right_shoulder_roll_link", "right_elbow_link", "right_wrist_yaw_link")
END_EFFECTORS = ("left_ankle_roll_link", "right_ankle_roll_link", "left_wrist_yaw_link", "right_wrist_yaw_link")
TERMS = (("motion_joint_pos", J, "reference"), ("motion_joint_vel", J, "reference"),
         ("motion_anchor_pos_b", 3, "reference"), ("motion_anchor_ori_b", 6, "reference"),
         ("base_lin_vel", 3, "proprio"), ("base_ang_vel", 3, "proprio"), ("joint_pos", J, "proprio"),
         ("joint_vel", J, "proprio"), ("actions", J, "proprio"))
HEIGHT, DEFAULT = G1.default_pose()
pytestmark = [pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
              pytest.mark.filterwarnings("ignore:The feature will be removed")]


def make_card(terms=TERMS) -> PolicyCard:
    at, rows = 0, []
    for name, size, group in terms:
        rows.append(ObservationTerm(name=name, start=at, size=size, group=group))
        at += size
    return PolicyCard(
        task="tracking-test", robot=G1.name, joint_names=list(G1.joint_names), kp=G1.kp.tolist(), kd=G1.kd.tolist(),
        armature=(G1.kp / NATURAL_FREQ**2).tolist(), effort_limit=G1.effort_limit.tolist(),
        default_joint_pos=DEFAULT.tolist(), action_scale=(0.25 * G1.effort_limit / G1.kp).tolist(),
        physics_dt=0.005, decimation=4, observation=Observation(size=at, terms=rows),
        latent=Latent(dim=LATENT, reference_terms=[t[0] for t in terms if t[2] == "reference"],
                      proprio_terms=[t[0] for t in terms if t[2] == "proprio"]),
        motion=MotionSpec(anchor_body="torso_link", tracked_bodies=list(TRACKED),
                          end_effector_bodies=list(END_EFFECTORS), fps=50.0))


CARD = make_card()
N = CARD.observation.size


class TinyPolicy(torch.nn.Module):
    """obs -> (actions, latent); `bias` (with zero output weights) forces a constant action."""

    def __init__(self, n_obs: int, bias: float | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Linear(n_obs, 32), torch.nn.ELU())
        self.latent = torch.nn.Linear(32, LATENT)
        self.head = torch.nn.Linear(LATENT + 32, J)
        if bias is not None:
            with torch.no_grad():
                self.head.weight.zero_()
                self.head.bias.copy_(torch.tensor([bias * (-1) ** i for i in range(J)]))

    def forward(self, obs):
        h = self.body(obs)
        z = self.latent(h)
        return self.head(torch.cat([z, h], -1)), z


def export_policy(directory: Path, card: PolicyCard, bias: float | None = None, n_obs: int | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    net = TinyPolicy(n_obs or card.observation.size, bias).eval()
    torch.onnx.export(net, (torch.zeros(1, n_obs or card.observation.size),), str(directory / ONNX_NAME),
                      dynamo=False, input_names=["obs"], output_names=["actions", "latent"])
    card.save(directory)
    return directory


def save_motion(directory: Path, joint_pos: np.ndarray, fps: float = 50.0) -> Path:
    T = len(joint_pos)
    motion = motion_from_root_and_joints(fps, np.tile([0.0, 0.0, HEIGHT], (T, 1)), np.tile([1.0, 0, 0, 0], (T, 1)),
                                         joint_pos)
    directory.mkdir(parents=True, exist_ok=True)
    motion.save(directory)
    return directory


@pytest.fixture(scope="module")
def motions(tmp_path_factory) -> dict[str, Path]:
    """`still`: the default pose held 1 s; `arms`: the arms swing away from the default pose."""
    root = tmp_path_factory.mktemp("motions")
    t = np.arange(51) / 50.0
    arms = np.tile(DEFAULT, (51, 1))
    for name in ("left_shoulder_pitch_joint", "right_shoulder_pitch_joint", "left_elbow_joint"):
        arms[:, G1.joint_names.index(name)] += 0.3 + 0.2 * np.sin(2 * np.pi * t)
    return {"still": save_motion(root / "still", np.tile(DEFAULT, (51, 1))), "arms": save_motion(root / "arms", arms)}


@pytest.fixture(scope="module")
def zero_policy(tmp_path_factory) -> Path:
    return export_policy(tmp_path_factory.mktemp("zero"), CARD, bias=0.0)


def _env(motion: Path, card: PolicyCard = CARD) -> MujocoTrackingEnv:
    ref = load_reference(motion, card.joint_names, reference_bodies(card), card.motion.fps)
    return MujocoTrackingEnv(card, ref, seed=0)


def _term(obs: np.ndarray, name: str, card: PolicyCard = CARD) -> np.ndarray:
    t = card.term(name)
    return obs[t.start:t.start + t.size]


def test_observation_at_reset_and_after_a_step(motions):
    env = _env(motions["arms"])
    ref = env.ref
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (N,) and obs.dtype == np.float32
    assert env.action_space.shape == (J,) and info["frame"] == 0
    # The robot stands on frame 0 and is shown frame 1, as mjlab's command advances after a reset.
    assert env.command_frame == 1
    np.testing.assert_allclose(_term(obs, "motion_joint_pos"), ref.joint_pos[1], atol=1e-6)
    np.testing.assert_allclose(_term(obs, "motion_joint_vel"), ref.joint_vel[1], atol=1e-5)
    np.testing.assert_allclose(_term(obs, "motion_anchor_pos_b"), 0.0, atol=1e-5)
    np.testing.assert_allclose(_term(obs, "motion_anchor_ori_b"), [1, 0, 0, 1, 0, 0], atol=1e-5)
    np.testing.assert_allclose(_term(obs, "joint_pos"), ref.joint_pos[0] - DEFAULT, atol=1e-6)
    assert np.abs(_term(obs, "joint_pos")).max() > 0.25  # the arms really are away from the default
    np.testing.assert_allclose(_term(obs, "joint_vel"), ref.joint_vel[0], atol=1e-5)
    np.testing.assert_allclose(_term(obs, "actions"), 0.0)
    action = np.linspace(-0.2, 0.2, J)
    obs, _, terminated, truncated, info = env.step(action)
    assert info["frame"] == env.frame == 1 and not terminated and not truncated
    np.testing.assert_allclose(_term(obs, "motion_joint_pos"), ref.joint_pos[2], atol=1e-6)
    assert not np.allclose(ref.joint_pos[2], ref.joint_pos[1])
    np.testing.assert_allclose(_term(obs, "actions"), action, atol=1e-6)
    np.testing.assert_allclose(_term(obs, "joint_pos"), env.data.qpos[env.qadr] - DEFAULT, atol=1e-6)
    np.testing.assert_allclose(env.target, DEFAULT + np.asarray(CARD.action_scale) * action)


def test_anchor_and_imu_terms_match_mjlab_definitions(motions):
    """Robot anchor moved and turned away from the reference: the anchor terms agree with mjlab's
    own math (subtract_frame_transforms, matrix_from_quat[..., :2]); IMU terms are pelvis-frame
    angular velocity and the site's linear velocity."""
    lab = pytest.importorskip("mjlab.utils.lab_api.math")
    env = _env(motions["arms"])
    env.reset(seed=0)
    d = env.data
    d.qpos[env.root_q:env.root_q + 3] += [0.3, -0.2, 0.05]
    quat = np.array([0.9, 0.1, -0.2, 0.3])
    d.qpos[env.root_q + 3:env.root_q + 7] = quat / np.linalg.norm(quat)
    d.qvel[env.root_v:env.root_v + 6] = [0.5, -0.1, 0.2, 0.3, -0.4, 0.6]
    mujoco.mj_forward(env.model, d)
    obs = env.observation()
    robot_pos, robot_quat = (torch.tensor(x)[None] for x in env.robot_anchor())
    ref_pos = torch.tensor(env.ref.body_pos_w[0, env.ref_anchor])[None]
    ref_quat = torch.tensor(env.ref.body_quat_w[0, env.ref_anchor])[None]
    pos_b, ori_b = lab.subtract_frame_transforms(robot_pos, robot_quat, ref_pos, ref_quat)
    mat = lab.matrix_from_quat(ori_b)
    np.testing.assert_allclose(_term(obs, "motion_anchor_pos_b"), pos_b[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(_term(obs, "motion_anchor_ori_b"), mat[..., :2].reshape(1, -1)[0].numpy(), atol=1e-5)
    assert np.linalg.norm(_term(obs, "motion_anchor_pos_b")) > 0.2
    pelvis = env.model.body("pelvis").id
    R = d.xmat[pelvis].reshape(3, 3)
    omega_local = d.qvel[env.root_v + 3:env.root_v + 6]
    np.testing.assert_allclose(_term(obs, "base_ang_vel"), omega_local, atol=1e-5)
    site = env.model.site("imu_in_pelvis").id
    v_site_local = R.T @ d.qvel[env.root_v:env.root_v + 3] + np.cross(omega_local, env.model.site_pos[site])
    np.testing.assert_allclose(_term(obs, "base_lin_vel"), v_site_local, atol=1e-5)


def test_zero_action_holds_the_default_pose_for_one_second(zero_policy, motions):
    """PD alone on the default pose stands 1 s (it tips forward at ~1.3 s: the two ankles' kp,
    2 x 28.5 Nm/rad, is well below m g h ~ 220 Nm/rad of the robot as an inverted pendulum)."""
    out = run_sim2sim(zero_policy, [motions["still"]])
    row = out["per_rollout"][0]
    assert row["motion"] == "still" and not row["fell"] and row["success"]
    assert row["progress"] == 1.0 and row["steps"] == 50  # 51 frames: frame 0 at reset, 50 control steps
    assert out["overall"]["fall_rate"] == 0.0 and out["motions"]["still"]["rollouts"] == 1
    assert row["max_body_error_m"] < 0.15  # the PD sags under gravity but holds the pose
    timing = out["timing"]
    assert timing["control_steps"] == 50 and timing["policy_inference_us_mean"] > 0
    assert timing["sim_real_time_factor"] > 1.0 and timing["env_steps_per_s"] > 50


def test_large_actions_make_the_robot_fall(tmp_path, motions):
    policy = export_policy(tmp_path / "wild", CARD, bias=8.0)
    out = run_sim2sim(policy, [motions["still"]], episodes=2)
    rows = out["per_rollout"]
    assert len(rows) == 2 and all(r["fell"] and not r["success"] for r in rows)
    assert all(r["progress"] < 1.0 for r in rows)
    assert out["overall"]["fall_rate"] == 1.0 and out["overall"]["success_rate"] == 0.0


def test_env_ends_on_fall_as_terminated(motions):
    env = _env(motions["still"])
    env.reset(seed=0)
    for _ in range(50):
        _, _, terminated, truncated, info = env.step(np.full(J, 8.0) * (-1) ** np.arange(J))
        if terminated or truncated:
            break
    assert terminated and not truncated and info["fell"] and env.frame < 50


def test_random_policy_with_video(tmp_path, motions):
    policy = export_policy(tmp_path / "random", CARD)
    video = tmp_path / "sim2sim.mp4"
    out = run_sim2sim(policy, [motions["arms"]], video=video, video_seconds=0.3)
    assert video.is_file() and video.stat().st_size > 1000
    assert not list(tmp_path.glob(".*partial*"))
    import imageio_ffmpeg
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 15
    assert set(out) >= {"motions", "overall", "per_rollout", "timing"}
    json.dumps(out)  # the report is plain JSON


def test_missing_card_is_bad_input(tmp_path, zero_policy, motions):
    broken = tmp_path / "broken"
    shutil.copytree(zero_policy, broken)
    (broken / CARD_NAME).unlink()
    with pytest.raises(GrailError, match=CARD_NAME):
        run_sim2sim(broken, [motions["still"]])


def test_onnx_input_size_must_match_the_card(tmp_path, motions):
    policy = export_policy(tmp_path / "wrong", CARD, n_obs=N + 3)
    with pytest.raises(GrailError, match=ONNX_NAME) as err:
        run_sim2sim(policy, [motions["still"]])
    assert str(N + 3) in str(err.value) and str(N) in str(err.value)


def test_unknown_observation_term_names_card_and_term(tmp_path, zero_policy, motions):
    terms = tuple(("projected_gravity", 3, g) if n == "base_lin_vel" else (n, s, g) for n, s, g in TERMS)
    policy = tmp_path / "unknown"
    shutil.copytree(zero_policy, policy)
    make_card(terms).save(policy)
    with pytest.raises(GrailError, match="projected_gravity") as err:
        run_sim2sim(policy, [motions["still"]])
    assert err.value.file == str(policy / CARD_NAME) and "observation.terms" in err.value.field


def test_term_with_wrong_size_is_bad_input():
    terms = tuple(("motion_anchor_ori_b", 9, g) if n == "motion_anchor_ori_b" else (n, s, g) for n, s, g in TERMS)
    with pytest.raises(GrailError, match="size 9, expected 6"):
        resolve_terms(make_card(terms))


def test_reference_at_another_rate_is_bad_input(motions):
    ref = load_reference(motions["still"], CARD.joint_names, reference_bodies(CARD), 25.0)
    with pytest.raises(GrailError, match="motion.fps"):
        MujocoTrackingEnv(CARD, ref)
