"""The retarget stage: ``recon/hoi.npz`` (or ``video/gt.npz``) -> ``robot/`` for one sequence.

Writes ``motion.npz`` + ``meta.json`` (grail.robot.motion), ``metrics.json`` (grail.retarget.metrics)
and, unless disabled, ``replay.mp4`` (the source video beside the robot). Everything goes into the
stage's temporary directory and is renamed into place by the sequence store.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np

from grail import __version__
from grail.retarget.metrics import Bounds, check, retarget_metrics
from grail.retarget.solver import ROBOT_FRAMES, Retargeter, SolverOptions
from grail.retarget.source import HumanMotion, load_human_motion, source_file
from grail.retarget.surfaces import HandGeometry, ObjectSurface
from grail.retarget.targets import PELVIS_ABOVE_HIPS, TaskWeights, build_targets
from grail.robot.g1 import RobotSpec, robot_spec
from grail.robot.model import joint_qpos_indices, robot_body_names, robot_model
from grail.robot.motion import RobotMotion
from grail.robot.scene import PREFIX, RobotScene, robot_in_scene, static_scene_with_robot
from grail.sequence import Sequence, StageResult, hash_file

SEAT_SEARCH_M = 0.6    # how far below the hips a seat is looked for
REPLAY_WIDTH = 480     # each half of the side-by-side replay


@dataclass
class RetargetOptions:
    robot: str = "g1_29dof_rev_1_0"
    weights: TaskWeights = field(default_factory=TaskWeights)
    solver: SolverOptions = field(default_factory=SolverOptions)
    replay: bool = True


def stage_inputs(seq: Sequence, options: RetargetOptions) -> dict[str, str]:
    src = source_file(seq.path)
    settings = json.dumps({"robot": options.robot, "weights": asdict(options.weights),
                           "solver": asdict(options.solver), "replay": options.replay}, sort_keys=True)
    inputs = {"source": hash_file(src), "source_file": src.relative_to(seq.path).as_posix(),
              "character": hash_file(seq.path / "scene" / "character.npz"),
              "scene_xml": hash_file(seq.path / "scene" / "scene.xml"), "spec": hash_file(seq.path / "scene" / "spec.yaml"),
              "settings": settings, "grail": __version__}
    for name in ("video.json", "video.mp4"):  # the fps check and the replay's left half
        if (seq.path / "video" / name).is_file():
            inputs[name] = hash_file(seq.path / "video" / name)
    return inputs


def retarget_motion(seq_dir: Path, options: RetargetOptions,
                    progress: Callable[[int, int], None] | None = None) -> tuple[RobotMotion, dict, np.ndarray, RobotScene]:
    """Solve the robot motion of a sequence and measure it; nothing is written."""
    robot = robot_spec(options.robot)
    motion = load_human_motion(seq_dir)
    scene = robot_in_scene(seq_dir / "scene" / "scene.xml", robot)
    seats = seat_heights(scene, motion)
    surfaces = object_surfaces(scene, motion)
    model = robot_model(robot.name)
    hands = {side: HandGeometry.from_model(model, side) for side in ("left", "right")}
    targets = build_targets(motion, options.weights, seats, surfaces, hands)
    ik_model = static_scene_with_robot(seq_dir / "scene" / "scene.xml", robot, movable=tuple(motion.object_names))
    retargeter = Retargeter(ik_model, options.weights, options.solver, robot, PREFIX)
    objects = {name: (motion.object_pos[:, k], motion.object_quat[:, k]) for k, name in enumerate(motion.object_names)}
    t0 = time.perf_counter()
    Q = retargeter.solve(targets, motion.fps, progress, objects)
    solve_s = time.perf_counter() - t0
    robot_motion = _robot_motion(model, robot, Q, motion, seq_dir)
    metrics = retarget_metrics(Q, robot_motion.joint_pos, motion.fps, robot, model, ROBOT_FRAMES, targets, motion,
                               scene, surfaces, hands)
    metrics["scale"] = {k: round(v, 4) for k, v in targets.scale.items()}
    metrics["timings_s"] = {"solve": round(solve_s, 3), "fps": round(len(Q) / solve_s, 1)}
    metrics["solver"] = {"iterations": options.solver.iterations, "planted_foot_fallbacks": retargeter.fallbacks}
    metrics["violations"] = check(metrics["summary"], Bounds())
    return robot_motion, metrics, Q, scene


def retarget_dir(seq_dir: Path, out_dir: Path, options: RetargetOptions,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the stage's files into out_dir; returns the stage info kept in sequence.json."""
    t0 = time.perf_counter()
    robot_motion, metrics, Q, scene = retarget_motion(seq_dir, options, progress)
    robot_motion.save(out_dir)
    if options.replay:
        from grail.retarget.replay import write_replay

        video = seq_dir / "video" / "video.mp4"
        height = int(round(REPLAY_WIDTH * _aspect(seq_dir)))
        objects = {robot_motion.object_name: (robot_motion.object_pos_w, robot_motion.object_quat_w)} \
            if robot_motion.object_name in scene.object_qpos else {}
        t1 = time.perf_counter()
        metrics["replay"] = write_replay(scene, Q, objects, robot_motion.fps, out_dir / "replay.mp4",
                                         video if video.is_file() else None, REPLAY_WIDTH, height)
        metrics["timings_s"]["replay"] = round(time.perf_counter() - t1, 3)
    metrics["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return {"frames": robot_motion.frames, "violations": len(metrics["violations"]), **metrics["summary"],
            "solve_fps": metrics["timings_s"]["fps"]}


def retarget_sequence(seq_dir: Path, options: RetargetOptions | None = None, force: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> tuple[Sequence, StageResult]:
    """Run the retarget stage of a sequence (skipped when done and unchanged)."""
    options = options or RetargetOptions()
    robot_spec(options.robot)  # an unknown robot fails before anything else
    seq_dir = Path(seq_dir)
    seq = Sequence.open_after(seq_dir, "scene", "grail compose")
    inputs = stage_inputs(seq, options)
    return seq, seq.run_stage("robot", lambda tmp: retarget_dir(seq_dir, Path(tmp), options, progress), inputs,
                              force=force)


def object_surfaces(scene: RobotScene, motion: HumanMotion) -> dict[int, ObjectSurface]:
    """Collision surfaces of the motion's objects that the scene has."""
    return {k: ObjectSurface(scene.model, name) for k, name in enumerate(motion.object_names)
            if name in scene.object_qpos}


def seat_heights(scene: RobotScene, motion: HumanMotion) -> np.ndarray:
    """Top of whatever is under the character's hips while it sits (NaN elsewhere): a ray down
    through the scene, robot excluded."""
    model, data = scene.model, mujoco.MjData(scene.model)
    data.qpos[scene.robot_qpos[2]] = -100.0  # the robot out of the way
    mujoco.mj_kinematics(model, data)
    hips = (motion.joints["left_hip"] + motion.joints["right_hip"]) / 2
    out = np.full(motion.frames, np.nan)
    geomgroup = np.ones(6, np.uint8)
    geom_id = np.zeros(1, np.int32)
    for t in np.flatnonzero(motion.contact["pelvis"]):
        start = hips[t] + np.array([0, 0, PELVIS_ABOVE_HIPS * 0.5])
        dist = mujoco.mj_ray(model, data, start, np.array([0, 0, -1.0]), geomgroup, 1, -1, geom_id)
        if 0 <= dist <= SEAT_SEARCH_M:
            out[t] = start[2] - dist
    return out


def _robot_motion(model: mujoco.MjModel, robot: RobotSpec, Q: np.ndarray, motion: HumanMotion,
                  seq_dir: Path) -> RobotMotion:
    data = mujoco.MjData(model)
    B = model.nbody - 1
    pos, quat = np.zeros((len(Q), B, 3)), np.zeros((len(Q), B, 4))
    for t, q in enumerate(Q):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pos[t], quat[t] = data.xpos[1:], data.xquat[1:]
    k = _object_index(motion)
    T = len(Q)
    object_pos = motion.object_pos[:, k] if k is not None else np.zeros((T, 3))
    object_quat = motion.object_quat[:, k] if k is not None else np.tile([1.0, 0, 0, 0], (T, 1))
    names = list(motion.contact)
    return RobotMotion(fps=motion.fps, joint_names=list(robot.joint_names), body_names=robot_body_names(model),
                       joint_pos=Q[:, joint_qpos_indices(model, robot)], body_pos_w=pos, body_quat_w=quat,
                       object_pos_w=object_pos, object_quat_w=object_quat,
                       contact=np.stack([motion.contact[n] for n in names], axis=1), contact_names=names,
                       robot=robot.name, object_name=motion.object_names[k] if k is not None else None,
                       source=f"{seq_dir.name}/{motion.source}", extra_meta={"task": motion.task, "grail": __version__})


def _object_index(motion: HumanMotion) -> int | None:
    """The object the hands interact with (the first touched), else the first object, else none."""
    for side in ("left_hand", "right_hand"):
        touched = motion.contact_object[side][motion.contact_object[side] >= 0]
        if len(touched):
            return int(touched[0])
    return 0 if motion.object_names else None


def _aspect(seq_dir: Path) -> float:
    try:
        cam = json.loads((seq_dir / "scene" / "camera.json").read_text())
        return float(cam["height"]) / float(cam["width"])
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        return 9 / 16
