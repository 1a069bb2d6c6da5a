"""A short CPU training run of the G1 tracker on easy motions, with evaluation before and after.

Easy motions: standing (the G1's knees-bent pose held still, built by forward kinematics) and
walking (the first seconds of a retargeted pickup_table sequence, flat ground, before the reach).
Prints iterations, wall time, env steps/s, mean reward and episode length at the start and end,
and the evaluation table (success rate, MPJPE, progress) of the first and the last checkpoint;
writes training curves (PNG) into the run.

    python benchmarks/tracker_training.py --out /tmp/tracker_bench --iterations 150 --num-envs 64 \
        [--walk out/pickup_table_s00000/robot]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def standing(out: Path, seconds: float = 4.0, fps: float = 50.0) -> Path:
    from grail.library.formats import motion_from_root_and_joints
    from grail.robot.g1 import G1

    height, q = G1.default_pose()
    n = int(seconds * fps)
    m = motion_from_root_and_joints(fps, np.tile([0.0, 0.0, height], (n, 1)), np.tile([1.0, 0, 0, 0], (n, 1)),
                                    np.tile(q, (n, 1)), source="standing (knees_bent pose)")
    (out / "stand").mkdir(parents=True, exist_ok=True)
    m.save(out / "stand")
    return out / "stand"


def walking(src: Path, out: Path, seconds: float) -> Path:
    """The first `seconds` of a retargeted motion, velocities recomputed."""
    from grail.robot.motion import RobotMotion

    m = RobotMotion.load(src)
    n = min(m.frames, int(seconds * m.fps))
    cut = RobotMotion(fps=m.fps, joint_names=m.joint_names, body_names=m.body_names, joint_pos=m.joint_pos[:n],
                      body_pos_w=m.body_pos_w[:n], body_quat_w=m.body_quat_w[:n], object_pos_w=m.object_pos_w[:n],
                      object_quat_w=m.object_quat_w[:n], contact=m.contact[:n], contact_names=m.contact_names,
                      robot=m.robot, source=f"{src} (first {seconds:g} s)")
    (out / "walk").mkdir(parents=True, exist_ok=True)
    cut.save(out / "walk")
    return out / "walk"


def walk_source(args) -> Path:
    if args.walk:
        return Path(args.walk)
    import subprocess
    import sys

    root = Path(args.out) / "seqs"
    robot = root / "pickup_table_s00000" / "robot"
    if not (robot / "motion.npz").is_file():
        subprocess.run([sys.executable, "-m", "grail.cli", "run", "scenes/pickup_table.yaml", "--seed", "0", "--out",
                        str(root), "--human", "oracle"], check=True)
    return robot


def table(report: dict, label: str) -> None:
    print(f"\n{label}")
    print(f"{'motion':<12} {'success':>8} {'progress':>9} {'MPJPE mm':>9} {'joint rad':>10} {'anchor m':>9}")
    for name, r in list(report["motions"].items()) + [("overall", report["overall"])]:
        print(f"{name:<12} {r['success_rate']:>8.2f} {r['progress']:>9.2f} {r['mpjpe_local_mm']:>9.1f} "
              f"{r['joint_pos_error_rad']:>10.3f} {r['global_anchor_error_m']:>9.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/tracker_bench")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--walk", help="robot motion directory to cut the walk from (default: make pickup_table s0)")
    ap.add_argument("--walk-seconds", type=float, default=2.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full-randomisation", action="store_true",
                    help="keep pushes and mjlab's start perturbation (default: off, as a short CPU run cannot learn "
                         "to survive 0.5 m/s kicks; friction, mass, CoM, noise, encoder bias and delay stay on)")
    args = ap.parse_args()

    from grail.tasks.tracking.config import TrainConfig, checkpoints
    from grail.tasks.tracking.curves import plot_curves, read_scalars
    from grail.tasks.tracking.evaluate import evaluate
    from grail.tasks.tracking.train import train

    out = Path(args.out)
    motions = out / "motions"
    standing(motions)
    walking(walk_source(args), motions, args.walk_seconds)
    run = out / "run"
    config = TrainConfig(motions=str(motions), out=str(run), device=args.device, num_envs=args.num_envs,
                         iterations=args.iterations, save_interval=max(args.iterations // 5, 1))
    if not args.full_randomisation:
        config.randomisation.push = False
        config.randomisation.start_perturbation = 0.0
    t0 = time.time()
    train(config)
    seconds = time.time() - t0
    scalars = read_scalars(run)
    plot_curves(run)
    reward = scalars.get("Train/mean_reward", [])
    length = scalars.get("Train/mean_episode_length", [])
    fps = scalars.get("Perf/total_fps", [])
    first, last = checkpoints(run)[0], checkpoints(run)[-1]
    before, _ = evaluate(run, str(motions), checkpoint=first, device=args.device)
    after, _ = evaluate(run, str(motions), checkpoint=last, device=args.device)
    print(f"\ntraining: {args.iterations} iterations x {args.num_envs} envs x 24 steps in {seconds:.0f} s "
          f"({seconds / 60:.1f} min) on {args.device}; env steps/s mean {np.mean([v for _, v in fps]) if fps else float('nan'):.0f}")
    if reward:
        k = max(len(reward) // 10, 1)
        print(f"mean reward: first {k} iterations {np.mean([v for _, v in reward[:k]]):.2f}, "
              f"last {k} {np.mean([v for _, v in reward[-k:]]):.2f}")
        print(f"mean episode length (steps): first {np.mean([v for _, v in length[:k]]):.1f}, "
              f"last {np.mean([v for _, v in length[-k:]]):.1f}")
    table(before, f"evaluation, {first.name}")
    table(after, f"evaluation, {last.name}")
    (out / "summary.json").write_text(json.dumps({"seconds": seconds, "before": before, "after": after}, indent=1))


if __name__ == "__main__":
    main()
