"""Train the tracker with PPO (rsl-rl) on the mjlab task, offline: TensorBoard logs and checkpoints
in the run directory (``run.json``, see config.py, rebuilds the task and the policy), resuming from
a checkpoint.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable

import torch

from grail.tasks.tracking.config import TrackerTaskConfig, TrainConfig, latest_checkpoint, resolve_device
from grail.tasks.tracking.env_cfg import tracker_env_cfg
from grail.tasks.tracking.library import library_motions

#: Called after each training iteration: (iteration done, last iteration, mean episode reward or None).
IterationFn = Callable[[int, int, "float | None"], None]


@contextlib.contextmanager
def quiet_simulator():
    """Keep mjlab's manager tables and warp's kernel-cache lines off the console."""
    import warp

    warp.config.quiet = True
    warp.config.log_level = warp.LOG_WARNING  # "Module ... load on device" lines are INFO
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def build_env(env_cfg, device: str):
    """An mjlab environment, built quietly (its first build compiles warp kernels; they are cached)."""
    from mjlab.envs import ManagerBasedRlEnv

    with quiet_simulator():
        return ManagerBasedRlEnv(env_cfg, device=device)


def make_env(config: TrainConfig, task: TrackerTaskConfig, device: str):
    """The mjlab environment, wrapped for rsl-rl (rewards clipped at zero when configured)."""
    from mjlab.rl import RslRlVecEnvWrapper

    class PositiveRewards(RslRlVecEnvWrapper):
        def step(self, actions):
            obs, reward, dones, extras = super().step(actions)
            return obs, reward.clamp_min(0.0), dones, extras

    env_cfg = tracker_env_cfg(task)
    env_cfg.seed = config.seed
    env = build_env(env_cfg, device)
    wrapper = PositiveRewards if config.ppo.only_positive_rewards else RslRlVecEnvWrapper
    with quiet_simulator():
        return wrapper(env)


def make_runner(config: TrainConfig, env, log_dir: Path | None, device: str):
    from mjlab.rl.runner import MjlabOnPolicyRunner

    with quiet_simulator():
        return MjlabOnPolicyRunner(env, config.rsl_rl(), str(log_dir) if log_dir else None, device)


def _report_iterations(runner, log_file: Path, on_iteration: IterationFn | None) -> None:
    """rsl-rl's per-iteration console block goes to train.log; the caller gets a short report."""
    original = runner.logger.log

    def log(*args, **kwargs):
        with open(log_file, "a") as sink, contextlib.redirect_stdout(sink):
            original(*args, **kwargs)
        if on_iteration:
            buffer = runner.logger.rewbuffer
            on_iteration(kwargs["it"], kwargs["total_it"] - 1, float(sum(buffer) / len(buffer)) if buffer else None)

    runner.logger.log = log


def train(config: TrainConfig, resume: Path | str | None = None, on_iteration: IterationFn | None = None) -> Path:
    """Train (or go on training) and return the last checkpoint. Bad motions fail before any work."""
    device = resolve_device(config.device)
    library_motions(config.motions)  # a clear error for a wrong path, before the simulator starts
    run = Path(config.out)
    start = latest_checkpoint(resume) if resume else None
    run.mkdir(parents=True, exist_ok=True)
    config.save(run)
    torch.manual_seed(config.seed)
    env = make_env(config, config.task(), device)
    runner = make_runner(config, env, run, device)
    _report_iterations(runner, run / "train.log", on_iteration)
    if start is not None:
        runner.load(str(start), map_location=device)
        runner.current_learning_iteration += 1  # the checkpoint's iteration is done
    with open(run / "train.log", "a") as sink, contextlib.redirect_stdout(sink):
        runner.learn(num_learning_iterations=config.iterations, init_at_random_ep_len=start is None)
    env.close()
    return latest_checkpoint(run)
