"""The G1 tracker end to end on tiny settings: motion library and resampling, the mjlab task and its
library command (reference placement, frame advance, failure-weighted sampling), PPO training with
checkpoints and resume, evaluation, ONNX export (ONNX = torch) and the sim2sim check beside mjlab.

Motions are made here: the G1's knees-bent pose held (standing) and a slow arm-and-waist sway, at
25 fps so the loader's resampling to the 50 Hz control rate is exercised.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mjlab")

from grail.errors import GrailError  # noqa: E402
from grail.library.formats import motion_from_root_and_joints  # noqa: E402
from grail.robot.g1 import G1  # noqa: E402
from grail.tasks.tracking.config import DomainRandomisation, TrackerTaskConfig  # noqa: E402
from grail.tasks.tracking.env_cfg import PROPRIO_TERMS, REFERENCE_TERMS, tracker_env_cfg  # noqa: E402
from grail.tasks.tracking.library import MotionLibrary, library_motions  # noqa: E402
from grail.tasks.tracking.metrics import Rollout, rollout_metrics  # noqa: E402
from grail.tasks.tracking.reference import load_reference  # noqa: E402
from grail.tasks.tracking.config import TrainConfig, checkpoints
from grail.tasks.tracking.train import build_env, train  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
FPS = 25.0
TRACKED = ["pelvis", "torso_link", "left_ankle_roll_link"]


def _motion(seconds: float, sway: float):
    height, q = G1.default_pose()
    n = int(seconds * FPS)
    t = np.arange(n) / FPS
    joints = np.tile(q, (n, 1))
    for name in ("left_shoulder_roll_joint", "waist_yaw_joint"):
        joints[:, G1.joint_names.index(name)] += sway * np.sin(2 * np.pi * 0.5 * t)
    return motion_from_root_and_joints(FPS, np.tile([0.0, 0.0, height], (n, 1)), np.tile([1.0, 0, 0, 0], (n, 1)),
                                       joints, source="test")


@pytest.fixture(scope="module")
def motions(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("motions")
    for name, seconds, sway in (("stand", 2.0, 0.0), ("sway", 3.0, 0.3)):
        (root / name).mkdir()
        _motion(seconds, sway).save(root / name)
    return root


@pytest.fixture(scope="module")
def trained(motions, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    config = TrainConfig(motions=str(motions), out=str(run), num_envs=4, iterations=2, save_interval=1)
    config.ppo.steps_per_env = 8
    config.policy.latent_dim = 8
    config.policy.encoder_dims = config.policy.decoder_dims = config.policy.critic_dims = (32,)
    config.policy.output_init_scale = 1.0  # full-size actions, so the ONNX/torch check below means something
    train(config)
    return run


# ----------------------------------------------------------------------------- library and reference


def test_reference_is_resampled_to_the_control_rate_and_ordered_by_name(motions):
    ref = load_reference(motions / "sway", list(reversed(G1.joint_names)), TRACKED, fps=50.0)
    assert ref.frames == 149  # 75 frames at 25 fps span 2.96 s
    j = list(reversed(G1.joint_names)).index("waist_yaw_joint")
    q0 = G1.default_pose()[1][G1.joint_names.index("waist_yaw_joint")]
    expected = q0 + 0.3 * np.sin(2 * np.pi * 0.5 * np.arange(149) / 50.0)
    assert np.abs(ref.joint_pos[:, j] - expected).max() < 0.01  # linear between 25 fps samples
    assert np.allclose(np.linalg.norm(ref.body_quat_w, axis=-1), 1.0)
    assert np.abs(ref.joint_vel[10:-10, j] - 0.3 * np.pi * np.cos(np.pi * np.arange(10, 139) / 50.0)).max() < 0.05


def test_library_concatenates_motions_with_their_starts(motions):
    lib = MotionLibrary.load(motions, list(G1.joint_names), TRACKED, fps=50.0)
    assert lib.names == ["stand", "sway"]
    assert lib.length.tolist() == [99, 149] and lib.start.tolist() == [0, 99]
    assert lib.body_pos_w.shape == (248, 3, 3)


def test_bad_motion_sources_fail_on_one_line(motions, tmp_path):
    with pytest.raises(GrailError, match="not a motion library"):
        library_motions(tmp_path)
    with pytest.raises(GrailError, match="no 'nope_link'"):
        load_reference(motions / "stand", list(G1.joint_names), ["nope_link"], 50.0)


def test_metrics_judge_falls_and_errors():
    T, B = 40, 3
    pos = np.zeros((T, B, 3))
    pos[:, :, 2] = [0.8, 1.0, 0.1]
    quat = np.tile([1.0, 0, 0, 0], (T, 1))
    joints = np.zeros((T, 29))
    same = rollout_metrics(Rollout(pos, pos, quat, quat, joints, joints, 1, (2,), T))
    assert same["success"] and same["mpjpe_local_mm"] == 0.0 and same["progress"] == 1.0
    fallen = pos.copy()
    fallen[20:, 1, 2] -= 0.5  # the anchor drops half a metre at step 20
    r = rollout_metrics(Rollout(fallen, pos, quat, quat, joints, joints + 0.1, 1, (2,), T))
    assert r["fell"] and not r["success"] and r["steps"] == 21 and r["progress"] == pytest.approx(21 / 40)
    assert r["joint_pos_error_rad"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- the mjlab task


def test_task_places_the_robot_on_the_reference_and_advances_it(motions):
    env = build_env(tracker_env_cfg(TrackerTaskConfig(motions=str(motions), num_envs=2, play=True)), "cpu")
    cmd = env.command_manager.get_term("motion")
    cmd.assign(torch.arange(2), torch.tensor([1, 0]))
    obs, _ = env.reset()
    assert obs["reference"].shape[1] == sum(s for _, s in REFERENCE_TERMS)
    assert obs["proprio"].shape[1] == sum(s for _, s in PROPRIO_TERMS)
    # The robot stands on frame 0; the policy is shown frame 1, as mjlab advances the command after a reset.
    assert cmd.local_frame().tolist() == [1, 1] and cmd.motion_ids.tolist() == [1, 0]
    frame0 = cmd.motion.body_pos_w[cmd.time_steps - 1, cmd.motion_anchor_body_index] + env.scene.env_origins
    assert torch.allclose(cmd.robot_anchor_pos_w, frame0, atol=1e-4)
    assert torch.allclose(obs["reference"][:, :29], cmd.motion.joint_pos[cmd.time_steps])
    assert obs["reference"][1, 58:61].abs().max() < 1e-3  # standing: frame 1 is where the robot is
    for k in range(1, 4):
        env.step(torch.zeros(2, 29))
        assert cmd.local_frame().tolist() == [k + 1, k + 1]
    env.close()


def test_start_perturbation_scales_mjlab_ranges(motions):
    def command(k: float):
        task = TrackerTaskConfig(motions=str(motions), randomisation=DomainRandomisation(start_perturbation=k))
        return tracker_env_cfg(task).commands["motion"]

    half = command(0.5)
    assert half.pose_range["x"] == pytest.approx((-0.025, 0.025))
    assert half.velocity_range["roll"] == pytest.approx((-0.26, 0.26))
    assert half.joint_position_range == pytest.approx((-0.05, 0.05))
    calm = command(0.0)
    assert calm.pose_range == {} and calm.velocity_range == {} and calm.joint_position_range == (0.0, 0.0)


def test_untrained_policy_starts_near_the_default_pose():
    from tensordict import TensorDict

    from grail.tasks.tracking.policy import LatentTrackerModel

    obs = TensorDict({"reference": torch.randn(64, 67), "proprio": torch.randn(64, 93)}, batch_size=[64])
    groups = {"actor": ["reference", "proprio"]}
    torch.manual_seed(0)
    small = LatentTrackerModel(obs, groups, "actor", 29, output_init_scale=0.01)
    torch.manual_seed(0)
    plain = LatentTrackerModel(obs, groups, "actor", 29, output_init_scale=1.0)
    with torch.no_grad():
        a, b = small(obs), plain(obs)
    assert torch.allclose(a, 0.01 * b, atol=1e-6) and b.abs().max() > 0.1


def test_sampling_prefers_where_episodes_failed(motions):
    env = build_env(tracker_env_cfg(TrackerTaskConfig(motions=str(motions), num_envs=64)), "cpu")
    cmd = env.command_manager.get_term("motion")
    assert cmd.bin_count == 2 + 3  # 1 s bins: 2 for the 2 s motion, 3 for the 3 s one
    cmd.bin_failed_count[:] = 0.0
    cmd.bin_failed_count[3] = 1.0  # recent failures in the sway's second second
    torch.manual_seed(0)
    cmd._adaptive_sampling(torch.arange(64))
    in_bin = cmd._bin_of(torch.arange(64))
    assert (in_bin == 3).float().mean() > 0.8
    assert cmd.motion_failure_share()[1] == pytest.approx(1.0)
    env.close()


# ----------------------------------------------------------------------------- train, eval, export, sim2sim


def test_training_writes_checkpoints_logs_and_resumes(trained):
    assert [p.name for p in checkpoints(trained)] == ["model_0.pt", "model_1.pt"]
    assert list(trained.glob("events.out.tfevents.*")) and (trained / "run.json").is_file()
    config = TrainConfig.load(trained)
    assert config.policy.latent_dim == 8 and config.ppo.steps_per_env == 8
    config.iterations = 1
    train(config, resume=trained)
    assert [p.name for p in checkpoints(trained)][-1] == "model_2.pt"
    state = torch.load(trained / "model_2.pt", weights_only=False)
    assert state["iter"] == 2 and "encoder.0.weight" in state["actor_state_dict"]


def test_evaluation_export_and_sim2sim_agree(trained, motions, tmp_path):
    import onnxruntime as ort

    from grail.export.card import load_card
    from grail.export.onnx_export import export_policy
    from grail.export.sim2sim import run_sim2sim
    from grail.tasks.tracking.evaluate import evaluate, load_actor
    from tensordict import TensorDict

    report, trajectories = evaluate(trained, str(motions))
    assert set(report["motions"]) == {"stand", "sway"} and len(trajectories) == 2
    assert 0 < report["overall"]["progress"] <= 1
    card = export_policy(trained, tmp_path / "policy")
    assert load_card(tmp_path / "policy") == card
    assert card.joint_names == list(G1.joint_names) and card.control_dt == pytest.approx(0.02)
    assert card.observation.size == 160 and card.latent.dim == 8 and card.torch_onnx_max_abs_diff < 1e-4
    # An independent check of the graph: random observations through onnxruntime and the checkpoint.
    config = TrainConfig.load(trained)
    obs = torch.randn(16, 160)
    actor = load_actor(config, checkpoints(trained)[-1], TensorDict({"reference": obs[:, :67], "proprio": obs[:, 67:]},
                                                                    batch_size=[16]))
    with torch.no_grad():
        expected = actor(TensorDict({"reference": obs[:, :67], "proprio": obs[:, 67:]}, batch_size=[16]))
    got = ort.InferenceSession(str(tmp_path / "policy" / "policy.onnx")).run(["actions"], {"obs": obs.numpy()})[0]
    assert np.abs(got - expected.numpy()).max() < 1e-4
    # The same policy in plain MuJoCo: the same metrics, and (for this barely trained policy) the same fate.
    other = run_sim2sim(tmp_path / "policy", [motions / "stand", motions / "sway"], video=None)
    assert set(other["motions"]) == {"stand", "sway"}
    for name in ("stand", "sway"):
        a, b = report["motions"][name], other["motions"][name]
        assert abs(a["progress"] - b["progress"]) < 0.25, (name, a, b)


def test_cli_rejects_bad_runs_and_motions(tmp_path):
    def grail(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grail.cli", *args], capture_output=True, text=True, timeout=300)

    r = grail("train", "tracker", "--motions", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--iterations", "1")
    assert r.returncode == 1 and "not a motion library" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    r = grail("export", str(tmp_path), "--out", str(tmp_path / "p"))
    assert r.returncode == 1 and "run.json" in r.stderr and not (tmp_path / "p").exists()
    r = grail("sim2sim", str(tmp_path), "--motion", str(tmp_path))
    assert r.returncode == 1 and "policy.json" in r.stderr
    r = grail("train", "tracker", "--motions", str(tmp_path), "--out", str(tmp_path / "r"), "--device", "tpu")
    assert r.returncode == 1 and "--device" in r.stderr
