"""Speed of the tracker's pieces: mjlab environment steps per second at several environment counts
(random actions; a control step is 4 physics steps), the first build's kernel compile time when
warp's cache is cold, and the exported policy's ONNX latency at batch 1 (target <= 100 us).

    python benchmarks/tracker_speed.py [--envs 1 16 64] [--steps 100] [--cold] [--device cpu|cuda]

The motions are a standing pose held (made here), so the figures measure the simulator and the
task's managers, not the data.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def motions(root: Path) -> Path:
    from grail.library.formats import motion_from_root_and_joints
    from grail.robot.g1 import G1

    height, q = G1.default_pose()
    n = 500
    m = motion_from_root_and_joints(50.0, np.tile([0, 0, height], (n, 1)), np.tile([1.0, 0, 0, 0], (n, 1)),
                                    np.tile(q, (n, 1)))
    (root / "stand").mkdir(parents=True, exist_ok=True)
    m.save(root / "stand")
    return root


def env_steps_per_second(lib: Path, num_envs: int, steps: int, device: str) -> tuple[float, float]:
    """(build seconds, environment steps per second) with the training configuration."""
    import torch

    from grail.tasks.tracking.config import TrackerTaskConfig
    from grail.tasks.tracking.env_cfg import tracker_env_cfg
    from grail.tasks.tracking.train import build_env

    t0 = time.perf_counter()
    env = build_env(tracker_env_cfg(TrackerTaskConfig(motions=str(lib), num_envs=num_envs)), device)
    env.reset()
    action = lambda: 0.3 * torch.randn(num_envs, 29, device=device)  # noqa: E731
    for _ in range(5):
        env.step(action())
    build = time.perf_counter() - t0
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(action())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    rate = steps * num_envs / (time.perf_counter() - t0)
    env.close()
    return build, rate


def onnx_latency_us(repeats: int = 2000) -> tuple[float, float]:
    """(mean, p99) microseconds of one batch-1 call of a tracker-sized policy (random weights)."""
    import onnxruntime as ort
    import torch
    from tensordict import TensorDict

    from grail.export.onnx_export import _write_onnx
    from grail.tasks.tracking.config import TrainConfig
    from grail.tasks.tracking.env_cfg import PROPRIO_TERMS, REFERENCE_TERMS
    from grail.tasks.tracking.policy import LatentTrackerModel

    nr, npr = sum(s for _, s in REFERENCE_TERMS), sum(s for _, s in PROPRIO_TERMS)
    cfg = TrainConfig(motions="", out="").rsl_rl()["actor"]
    cfg.pop("class_name")
    obs = TensorDict({"reference": torch.zeros(1, nr), "proprio": torch.zeros(1, npr)}, batch_size=[1])
    actor = LatentTrackerModel(obs, {"actor": ["reference", "proprio"]}, "actor", 29, **cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.onnx"
        _write_onnx(actor.as_onnx(), path, nr + npr)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = {"obs": np.random.default_rng(0).standard_normal((1, nr + npr)).astype(np.float32)}
        for _ in range(100):
            session.run(None, x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            session.run(None, x)
            times.append(time.perf_counter_ns() - t0)
    us = np.asarray(times) / 1e3
    return float(us.mean()), float(np.percentile(us, 99))


def cold_build_seconds(lib: Path) -> float:
    """A fresh process with an empty warp kernel cache builds a 1-environment task and steps it."""
    with tempfile.TemporaryDirectory() as cache:
        code = ("import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; import tracker_speed as t; "
                f"print(t.env_steps_per_second(Path({str(lib)!r}), 1, 1, 'cpu')[0])")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "WARP_CACHE_PATH": cache},
                       capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cold", action="store_true", help="also time a build with an empty kernel cache")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib = motions(Path(tmp))
        if args.cold:
            print(f"cold kernel cache: process start to first steps {cold_build_seconds(lib):.1f} s")
        print(f"{'envs':>6} {'build s':>8} {'env steps/s':>12} {'physics steps/s':>16}")
        for n in args.envs:
            build, rate = env_steps_per_second(lib, n, args.steps, args.device)
            print(f"{n:>6} {build:>8.1f} {rate:>12.0f} {4 * rate:>16.0f}")
    mean, p99 = onnx_latency_us()
    print(f"ONNX policy, batch 1, 1 thread: mean {mean:.0f} us, p99 {p99:.0f} us (target <= 100 us)")


if __name__ == "__main__":
    main()
