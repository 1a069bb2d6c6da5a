"""Retargeting speed: frames per second per CPU core on a 10 s motion (issue 4 asks >= 500 FPS;
GMR, the reference retargeter, reports 35-70 FPS on desktop CPUs).

Composes one template (place_table, 11 s, walking, reaching and carrying), synthesises its ground
truth (no render), then times the IK alone and the whole stage (targets, IK, metrics) on one
thread. The per-frame IK options can be varied to see what speed costs in accuracy.

    OMP_NUM_THREADS=1 python benchmarks/retarget_speed.py [--template place_table] [--repeat 3]
        [--iterations 4] [--no-self-collision] [--no-scene-collision]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one core, as the target is stated per core

from grail.retarget.solver import Retargeter, SolverOptions  # noqa: E402
from grail.retarget.stage import RetargetOptions, object_surfaces, retarget_motion, seat_heights  # noqa: E402
from grail.retarget.source import load_human_motion  # noqa: E402
from grail.retarget.surfaces import HandGeometry  # noqa: E402
from grail.retarget.targets import build_targets  # noqa: E402
from grail.robot.model import robot_model  # noqa: E402
from grail.robot.scene import PREFIX, robot_in_scene, static_scene_with_robot  # noqa: E402
from grail.scene.compose import ComposeOptions, compose_sequence  # noqa: E402
from grail.sequence import Sequence  # noqa: E402
from grail.video.procedural import synthesize  # noqa: E402


def sequence_with_motion(template: str, seed: int, root: Path) -> Path:
    """A composed sequence whose video stage holds the synthesised gt.npz only (no render)."""
    seq, _ = compose_sequence(Path("scenes") / f"{template}.yaml", seed, root, ComposeOptions(320, 180))
    synthesis = synthesize(seq.path / "scene")

    def write(tmp: Path) -> dict:
        synthesis.gt.save(tmp / "gt.npz")
        return {}

    Sequence.open(seq.path).run_stage("video", write, {"benchmark": "gt-only"})
    return seq.path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default="place_table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=SolverOptions.iterations)
    ap.add_argument("--no-self-collision", action="store_true")
    ap.add_argument("--no-scene-collision", action="store_true")
    args = ap.parse_args()
    solver = SolverOptions(iterations=args.iterations, self_collision=not args.no_self_collision,
                           scene_collision=not args.no_scene_collision)
    seq = sequence_with_motion(args.template, args.seed, Path(tempfile.mkdtemp(prefix="grail-rt-")))
    motion = load_human_motion(seq)
    options = RetargetOptions(solver=solver, replay=False)
    scene = robot_in_scene(seq / "scene" / "scene.xml")
    hands = {s: HandGeometry.from_model(robot_model(), s) for s in ("left", "right")}
    targets = build_targets(motion, options.weights, seat_heights(scene, motion), object_surfaces(scene, motion), hands)
    ik_model = static_scene_with_robot(seq / "scene" / "scene.xml", movable=tuple(motion.object_names))
    objects = {name: (motion.object_pos[:, k], motion.object_quat[:, k]) for k, name in enumerate(motion.object_names)}
    best = float("inf")
    for _ in range(args.repeat):
        retargeter = Retargeter(ik_model, options.weights, solver, prefix=PREFIX)
        t0 = time.perf_counter()
        retargeter.solve(targets, motion.fps, objects=objects)
        best = min(best, time.perf_counter() - t0)
    t0 = time.perf_counter()
    _, metrics, _, _ = retarget_motion(seq, options)
    stage_s = time.perf_counter() - t0
    T = motion.frames
    print(f"{args.template} s{args.seed}: {T} frames ({T / motion.fps:.1f} s at {motion.fps:g} fps), "
          f"iterations {solver.iterations}, self-collision {solver.self_collision}, scene-collision {solver.scene_collision}")
    print(f"  IK alone       : {T / best:7.0f} frames/s per core  ({1000 * best / T:.2f} ms/frame, best of {args.repeat})")
    print(f"  whole stage    : {T / stage_s:7.0f} frames/s  ({stage_s:.2f} s: load, targets, IK, metrics; no replay)")
    print(f"  quality        : {metrics['summary']}")


if __name__ == "__main__":
    main()
