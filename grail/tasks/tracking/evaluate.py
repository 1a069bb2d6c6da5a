"""Evaluate a trained tracker in mjlab: every motion of a library played from its first frame with
the deterministic policy, no randomisation and no early termination; falls and errors are scored
from the logged rollouts by the simulator-agnostic metrics (the same code scores sim2sim).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from grail.atomic import write_text_atomic
from grail.errors import GrailError
from grail.tasks.tracking.env_cfg import COMMAND, tracker_env_cfg
from grail.tasks.tracking.library import library_motions
from grail.tasks.tracking.metrics import Rollout, SuccessCriteria, rollout_metrics, summarise
from grail.tasks.tracking.policy import LatentTrackerModel
from grail.tasks.tracking.config import TrainConfig, latest_checkpoint, resolve_device
from grail.tasks.tracking.train import build_env

END_EFFECTORS = ("left_ankle_roll_link", "right_ankle_roll_link", "left_wrist_yaw_link", "right_wrist_yaw_link")


@dataclass
class Trajectory:
    """One environment's log: metric arrays plus root/joint states for the video."""

    motion: str
    rollout: Rollout
    robot_qpos: np.ndarray  # (T, 7 + J): root pos, root quat wxyz, joints (environment origin removed)
    ref_qpos: np.ndarray
    ref_body_local: np.ndarray  # (T, B, 3) reference tracked bodies, environment origin removed


def load_actor(config: TrainConfig, checkpoint: Path, obs: TensorDict, device: str = "cpu") -> LatentTrackerModel:
    """The trained actor, rebuilt from the run's configuration and the checkpoint's weights."""
    cfg = config.rsl_rl()["actor"]
    cfg.pop("class_name")
    actor = LatentTrackerModel(obs, {"actor": ["reference", "proprio"]}, "actor", 29, **cfg).to(device)
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=False)["actor_state_dict"]
        actor.load_state_dict(state)
    except (KeyError, RuntimeError, OSError) as exc:
        raise GrailError(f"not a checkpoint of this tracker ({str(exc).splitlines()[0]})", file=checkpoint) from None
    return actor.eval()


def _disable_terminations(env_cfg) -> None:
    """Falls are judged from the logs, so an episode plays its whole motion."""
    env_cfg.terminations = {k: v for k, v in env_cfg.terminations.items() if k == "time_out"}


def rollouts(config: TrainConfig, checkpoint: Path, motions: str, episodes: int = 1, device: str = "cpu",
             progress=None) -> list[Trajectory]:
    """Play each motion `episodes` times (one environment each) and log every control step."""
    count = len(library_motions(motions))
    env_cfg = tracker_env_cfg(config.task(play=True, num_envs=count * episodes, motions=motions))
    _disable_terminations(env_cfg)
    env = build_env(env_cfg, device)
    cmd = env.command_manager.get_term(COMMAND)
    motion_ids = torch.arange(count, device=device).repeat(episodes)
    cmd.assign(torch.arange(env.num_envs, device=device), motion_ids)
    obs, _ = env.reset()
    actor = load_actor(config, checkpoint, TensorDict(obs, batch_size=[env.num_envs]), device)
    steps = int(cmd.motion.length.max()) - 1
    logs: dict[str, list[np.ndarray]] = {k: [] for k in ("rb", "fb", "rq", "fq", "rj", "fj", "rroot", "froot")}
    origins = env.scene.env_origins

    def record() -> None:
        # The command shows the policy the next frame; the robot's state is compared with the frame of its own time.
        now, robot, lib = cmd.time_steps - 1, cmd.robot, cmd.motion
        ref_pos = lib.body_pos_w[now] + origins[:, None]
        logs["rb"].append(cmd.robot_body_pos_w.cpu().numpy())
        logs["fb"].append(ref_pos.cpu().numpy())
        logs["rq"].append(cmd.robot_anchor_quat_w.cpu().numpy())
        logs["fq"].append(lib.body_quat_w[now, cmd.motion_anchor_body_index].cpu().numpy())
        logs["rj"].append(cmd.robot_joint_pos.cpu().numpy())
        logs["fj"].append(lib.joint_pos[now].cpu().numpy())
        logs["rroot"].append(torch.cat([robot.data.root_link_pos_w - origins, robot.data.root_link_quat_w], 1).cpu().numpy())
        logs["froot"].append(torch.cat([ref_pos[:, 0] - origins, lib.body_quat_w[now, 0]], 1).cpu().numpy())

    record()
    with torch.inference_mode():
        for _ in range(steps - 1):
            obs, *_ = env.step(actor(TensorDict(obs, batch_size=[env.num_envs])))
            record()
            if progress:
                progress()
    env.close()
    arr = {k: np.stack(v, axis=1) for k, v in logs.items()}  # (E, T, ...)
    names = list(env_cfg.commands[COMMAND].body_names)
    anchor, ee = names.index(env_cfg.commands[COMMAND].anchor_body_name), tuple(names.index(n) for n in END_EFFECTORS)
    out = []
    for e in range(env.num_envs):
        m = int(motion_ids[e])
        T = int(cmd.motion.length[m]) - 1
        r = Rollout(arr["rb"][e, :T], arr["fb"][e, :T], arr["rq"][e, :T], arr["fq"][e, :T], arr["rj"][e, :T],
                    arr["fj"][e, :T], anchor, ee, motion_steps=T)
        origin = origins[e].cpu().numpy()
        out.append(Trajectory(cmd.motion.names[m], r, np.concatenate([arr["rroot"][e, :T], arr["rj"][e, :T]], 1),
                              np.concatenate([arr["froot"][e, :T], arr["fj"][e, :T]], 1), arr["fb"][e, :T] - origin))
    return out


def evaluate(run: Path | str, motions: str, checkpoint: Path | str | None = None, episodes: int = 1,
             device: str = "cpu", criteria: SuccessCriteria = SuccessCriteria(), progress=None) -> tuple[dict, list[Trajectory]]:
    """Metrics per motion and overall, with the criteria and the checkpoint they came from."""
    config = TrainConfig.load(run)
    ckpt = latest_checkpoint(checkpoint or run)
    trajectories = rollouts(config, ckpt, motions, episodes, resolve_device(device), progress)
    per_motion: dict[str, list[dict]] = {}
    rows = []
    for t in trajectories:
        rows.append({"motion": t.motion, **rollout_metrics(t.rollout, criteria)})
        per_motion.setdefault(t.motion, []).append(rows[-1])
    report = summarise(per_motion)
    report["per_rollout"] = rows
    report.update({"simulator": "mjlab (MuJoCo Warp)", "checkpoint": str(ckpt), "motions_source": str(motions),
                   "criteria": criteria.as_dict(), "episodes_per_motion": episodes})
    return report, trajectories


def save_report(report: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(report, indent=1) + "\n")
