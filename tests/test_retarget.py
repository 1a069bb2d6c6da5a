"""Retarget stage: the G1 model and its facts, the motion file, the metrics against constructed
ground truth, retargeting real procedural sequences, the CLI and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mujoco
import numpy as np
import pytest
from _video_helpers import copy_sequence, run_cli
from grail.errors import GrailError
from grail.retarget.metrics import Bounds, check, robot_frames
from grail.retarget.solver import ROBOT_FRAMES
from grail.retarget.source import load_human_motion
from grail.retarget.stage import RetargetOptions, retarget_motion
from grail.retarget.targets import segment_scales
from grail.robot.g1 import G1, robot_spec
from grail.robot.model import HEAD_CAMERA, joint_qpos_indices, robot_body_names, robot_model
from grail.robot.motion import RobotMotion, angular_velocity
from grail.robot.scene import robot_in_scene
from grail.sequence import Sequence
from grail.video.procedural import synthesize

NO_REPLAY = RetargetOptions(replay=False)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def with_motion(composed, tmp_path_factory):
    """template -> a private sequence whose video stage holds only gt.npz and video.json
    (synthesised, not rendered: the retarget stage reads nothing else of it)."""
    root = tmp_path_factory.mktemp("retarget")
    cache: dict[str, Path] = {}

    def get(template: str) -> Path:
        if template not in cache:
            seq_dir = copy_sequence(composed(template, 0), root / template)
            synthesis = synthesize(seq_dir / "scene")

            def write(tmp: Path) -> dict:
                synthesis.gt.save(tmp / "gt.npz")
                (tmp / "video.json").write_text(json.dumps({"fps": synthesis.gt.fps, "frames": synthesis.gt.frames}))
                return {}

            Sequence.open(seq_dir).run_stage("video", write, {"test": "gt-only"})
            cache[template] = seq_dir
        return cache[template]

    return get


@pytest.fixture(scope="module")
def retargeted(with_motion):
    cache: dict[str, tuple] = {}

    def get(template: str):
        if template not in cache:
            cache[template] = retarget_motion(with_motion(template), NO_REPLAY)
        return cache[template]

    return get


# ----------------------------------------------------------------------------- the robot


def test_g1_facts_match_the_packaged_model():
    model = robot_model()
    idx = joint_qpos_indices(model)
    assert list(idx) == list(range(7, 36))  # SDK motor order is the model's joint order
    for i, name in enumerate(G1.joint_names):
        assert np.allclose(model.jnt_range[model.joint(name).id], [G1.lower[i], G1.upper[i]], atol=1e-6), name
    assert G1.joint_names[12:15] == ("waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint")
    assert len(robot_body_names(model)) == model.nbody - 1 == 30
    knee = G1.joint_names.index("left_knee_joint")
    assert (G1.effort_limit[knee], G1.velocity_limit[knee]) == (139.0, 20.0)
    height, q = G1.default_pose("knees_bent")
    assert height == pytest.approx(0.76) and q[knee] == pytest.approx(0.669)
    assert q[G1.joint_names.index("right_shoulder_roll_joint")] == pytest.approx(-0.2)


def test_head_camera_looks_forward_and_down():
    model = robot_model()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    cam = data.cam_xmat[model.camera(HEAD_CAMERA).id].reshape(3, 3)
    forward = -cam[:, 2]
    pitch = np.degrees(np.arcsin(-forward[2]))
    assert forward[0] > 0 and abs(forward[1]) < 1e-9
    assert pitch == pytest.approx(47.6, abs=1e-6)
    mount = data.site_xpos[model.site(HEAD_CAMERA).id] - data.xpos[model.body("torso_link").id]
    assert np.allclose(mount, (0.058, 0.018, 0.430), atol=1e-9)


def test_unknown_robot_name():
    with pytest.raises(GrailError, match="unknown robot 'h1'"):
        robot_spec("h1")


# ----------------------------------------------------------------------------- the motion file


def _spin_motion(T: int = 30, fps: float = 30.0) -> RobotMotion:
    t = np.arange(T) / fps
    angle = 1.5 * t  # 1.5 rad/s about z
    quat = np.stack([np.cos(angle / 2), 0 * t, 0 * t, np.sin(angle / 2)], axis=1)
    body_pos = np.stack([np.stack([0.3 * t, 0 * t, 0.8 + 0 * t], 1)] * 2, axis=1)
    return RobotMotion(fps=fps, joint_names=list(G1.joint_names), body_names=["pelvis", "torso_link"],
                       joint_pos=np.tile(np.linspace(-0.1, 0.1, 29), (T, 1)) * t[:, None],
                       body_pos_w=body_pos, body_quat_w=np.stack([quat, quat], 1), object_pos_w=np.zeros((T, 3)),
                       object_quat_w=np.tile([1.0, 0, 0, 0], (T, 1)), contact=np.zeros((T, 2), bool),
                       contact_names=["left_foot", "right_foot"])


def test_motion_velocities_and_round_trip(tmp_path):
    motion = _spin_motion()
    assert np.allclose(motion.body_ang_vel_w[:, 0], [0, 0, 1.5], atol=1e-3)
    assert np.allclose(motion.body_lin_vel_w[:, 0], [0.3, 0, 0], atol=1e-9)
    motion.save(tmp_path)
    back = RobotMotion.load(tmp_path)
    assert back.joint_names == list(G1.joint_names) and back.body_names == ["pelvis", "torso_link"]
    assert np.allclose(back.body_quat_w, motion.body_quat_w, atol=1e-6)
    assert json.loads((tmp_path / "meta.json").read_text())["quat_order"] == "wxyz"


def test_angular_velocity_crosses_the_quaternion_sign_flip():
    angle = np.linspace(3.0, 3.6, 13)  # passes pi: w changes sign
    q = np.stack([np.cos(angle / 2), 0 * angle, np.sin(angle / 2), 0 * angle], 1)
    q[angle > np.pi] *= -1  # the same rotations, stored in the other hemisphere
    w = angular_velocity(q, fps=12 / 0.6)
    assert np.allclose(w, [0, 1.0, 0], atol=1e-3)


def test_motion_files_reject_nan_and_mismatched_fps(tmp_path):
    motion = _spin_motion()
    motion.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "fps": 50}))
    with pytest.raises(GrailError, match="fps"):
        RobotMotion.load(tmp_path)
    motion.joint_pos[3, 2] = np.nan
    with pytest.raises(GrailError, match="joint_pos: contains NaN"):
        motion.save(tmp_path / "other")


# ----------------------------------------------------------------------------- metrics on constructed truth


def test_penetration_metric_measures_a_robot_sunk_into_the_floor(with_motion):
    seq = with_motion("stairs_up")
    scene = robot_in_scene(seq / "scene" / "scene.xml")
    model = robot_model()
    _, joints = G1.default_pose("knees_bent")
    q = model.qpos0.copy()
    q[joint_qpos_indices(model)] = joints
    q[:2] = (-3.0, 3.0)  # clear of the stairs
    data = mujoco.MjData(model)
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    sole = data.site_xpos[model.site("left_foot").id][2]
    q[2] += -sole - 0.03  # soles 3 cm below the floor
    from grail.retarget.metrics import _contacts  # the measurement itself, on a pose we built

    motion = load_human_motion(seq)
    out = _contacts(scene, q[None], motion)
    assert out["scene_penetration_max_mm"] == pytest.approx(30.0, abs=2.5)
    assert out["self_collision_frames"] == 0


def test_check_names_each_violated_bound():
    summary = {"hand_object_error_mean_mm": 25.0, "foot_slide_max_cm_s": 0.4, "penetration_max_mm": None,
               "joint_limit_violations": 2, "velocity_limit_violations": 0}
    assert check(summary, Bounds()) == ["hand_object_error_mean_mm 25.0 > 20.0", "joint_limit_violations 2 > 0"]


# ----------------------------------------------------------------------------- retargeting sequences


@pytest.mark.slow
@pytest.mark.parametrize("template", ["pickup_table", "sit_chair", "stairs_up"])
def test_retarget_meets_the_quality_targets(retargeted, template):
    motion, metrics, Q, _ = retargeted(template)
    assert metrics["violations"] == [], metrics["summary"]
    s = metrics["summary"]
    assert s["joint_limit_violations"] == 0 and s["velocity_limit_violations"] == 0
    assert s["foot_slide_max_cm_s"] <= 1.0 and s["penetration_max_mm"] <= 10.0
    if template == "pickup_table":
        assert s["hand_object_error_mean_mm"] <= 20.0
        assert abs(metrics["hand_object"]["gap_mean_mm"]) < 5.0  # the hand touches the box, not 3 cm off
    assert np.all(motion.joint_pos >= G1.lower - 1e-3) and np.all(motion.joint_pos <= G1.upper + 1e-3)


@pytest.mark.slow
def test_stance_feet_stay_where_the_character_planted_them(with_motion, retargeted):
    """Against the ground truth: in every stance interval the robot's sole is within 1.5 cm of the
    character's planted sole (the ankle a fixed height above the support) and does not move."""
    seq = with_motion("stairs_up")
    motion, _, Q, _ = retargeted("stairs_up")
    human = load_human_motion(seq)
    feet = robot_frames(robot_model(), Q, {s: ROBOT_FRAMES[f"{s}_foot"] for s in ("left", "right")})
    ankle_height = np.mean([human.rest_joints[f"{s}_ankle"][2] for s in ("left", "right")])
    for side in ("left", "right"):
        stance = human.contact[f"{side}_foot"]
        robot_sole = feet[side][0][stance]
        human_sole_z = human.joints[f"{side}_ankle"][stance, 2] - ankle_height
        assert np.max(np.abs(robot_sole[:, 2] - human_sole_z)) < 0.015
        horizontal = np.linalg.norm(robot_sole[:, :2] - human.joints[f"{side}_ankle"][stance, :2], axis=1)
        assert np.max(horizontal) < 0.06  # the site is 4 cm ahead of the ankle axis


@pytest.mark.slow
def test_seated_pelvis_rests_on_the_seat(with_motion, retargeted):
    seq = with_motion("sit_chair")
    motion, metrics, Q, scene = retargeted("sit_chair")
    human = load_human_motion(seq)
    sitting = np.flatnonzero(human.contact["pelvis"])
    assert len(sitting) >= 5
    model, data = scene.model, mujoco.MjData(scene.model)
    pelvis_geom = model.geom("robot/pelvis_collision").id
    gaps = []
    for t in sitting:
        scene.set_state(data, Q[t])
        gaps.append(_distance_to_scene(model, data, pelvis_geom, scene))
    assert np.max(np.abs(gaps)) < 0.03, gaps


def _distance_to_scene(model, data, geom, scene) -> float:
    fromto = np.zeros(6)
    robot = set(scene.robot_bodies.tolist())
    return min(mujoco.mj_geomDistance(model, data, geom, g, 0.5, fromto) for g in range(model.ngeom)
               if model.geom_bodyid[g] not in robot and model.geom_contype[g] and model.body(model.geom_bodyid[g]).name != "world")


@pytest.mark.slow
def test_taller_human_is_scaled_per_segment(with_motion, tmp_path):
    """A human 1.25x the character's size walking and bending on flat ground (pickup_table with
    the table and box taken out, the motion scaled about the ground under its start): every
    segment is scaled back to the robot's length, the feet stay on the floor and planted, and
    the residual is reported."""
    seq = copy_sequence(with_motion("pickup_table"), tmp_path)
    original = segment_scales(load_human_motion(seq))
    xml = seq / "scene" / "scene.xml"
    spec = mujoco.MjSpec.from_file(str(xml))
    for body in list(spec.worldbody.bodies):
        spec.delete(body)
    xml.write_text(spec.to_xml())
    gt_path = seq / "video" / "gt.npz"
    z = dict(np.load(gt_path))
    T = z["joint_pos"].shape[0]
    anchor = z["joint_pos"][0, list(z["joint_names"]).index("pelvis")] * np.array([1, 1, 0])
    z["joint_pos"] = anchor + 1.25 * (z["joint_pos"] - anchor)
    z |= {"object_names": np.array([], dtype=str), "object_pos": np.zeros((T, 0, 3)), "object_quat": np.zeros((T, 0, 4)),
          "object_held": np.zeros((T, 0), bool), "contact_object": -np.ones_like(z["contact_object"])}
    np.savez(gt_path, **z)
    char = dict(np.load(seq / "scene" / "character.npz"))
    char["joint_positions"] = char["joint_positions"] * 1.25
    np.savez(seq / "scene" / "character.npz", **char)

    motion, metrics, Q, _ = retarget_motion(seq, NO_REPLAY)
    for segment, scale in metrics["scale"].items():
        assert scale == pytest.approx(original[segment] / 1.25, rel=1e-3), segment
    s = metrics["summary"]
    # Steps 1.25x longer on 0.8x legs: the feet hold, within 2 cm/s at the longest strides.
    assert s["foot_slide_max_cm_s"] <= 2.0 and s["penetration_max_mm"] <= 10.0, s
    assert s["joint_limit_violations"] == 0 and s["velocity_limit_violations"] == 0
    feet = robot_frames(robot_model(), Q, {"left": ROBOT_FRAMES["left_foot"]})["left"][0]
    stance = load_human_motion(seq).contact["left_foot"]
    assert np.all(np.abs(feet[stance, 2]) < 0.01)
    assert 0 < metrics["ik_residual"]["left_knee"]["position_mean_mm"] < 60  # reported, and bounded


# ----------------------------------------------------------------------------- CLI and contract


@pytest.mark.slow
def test_cli_writes_the_contract_and_skips_when_done(with_motion, tmp_path, capsys):
    seq = copy_sequence(with_motion("pickup_table"), tmp_path)
    code, err = run_cli(["retarget", str(seq), "--no-replay"], capsys)
    assert code is None, err
    robot = seq / "robot"
    assert sorted(p.name for p in robot.iterdir()) == ["meta.json", "metrics.json", "motion.npz"]
    meta = json.loads((robot / "meta.json").read_text())
    assert meta["joint_names"] == list(G1.joint_names) and meta["quat_order"] == "wxyz"
    assert meta["body_names"] == robot_body_names(robot_model()) and meta["object"] == "target"
    with np.load(robot / "motion.npz") as z:
        T = z["joint_pos"].shape[0]
        assert z["joint_pos"].shape == (T, 29) and z["body_pos_w"].shape == (T, 30, 3)
        assert z["object_pos_w"].shape == (T, 3) and z["contact"].shape == (T, len(meta["contact_names"]))
        assert z["contact"].dtype == bool and z["fps"].shape == (1,) and z["fps"][0] == meta["fps"]
    code, err = run_cli(["retarget", str(seq), "--no-replay"], capsys)
    assert code is None and "skipped" in err

    # The stage's motion through the peer formats and back: BeyondMimic CSV keeps the root and the
    # joints, and its reader rebuilds the same body poses by forward kinematics.
    csv = tmp_path / "motion.csv"
    code, err = run_cli(["library", "convert", str(seq), "--to", "csv", "--out", str(csv)], capsys)
    assert code is None, err
    code, err = run_cli(["library", "import-csv", str(csv), "--fps", str(meta["fps"]), "--out", str(tmp_path / "back")],
                        capsys)
    assert code is None, err
    original, back = RobotMotion.load(robot), RobotMotion.load(tmp_path / "back")
    assert np.allclose(back.joint_pos, original.joint_pos, atol=1e-5)
    assert np.allclose(back.body_pos_w, original.body_pos_w, atol=1e-4)


def _assert_failed_cleanly(code, err, seq, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (seq / "robot").exists()
    assert not [p for p in seq.iterdir() if p.name.startswith((".tmp", ".trash"))], list(seq.iterdir())


@pytest.mark.parametrize("damage, needles", [
    ("nan", ("gt.npz", "joint_pos", "NaN", "frame 7")),
    ("missing_joint", ("gt.npz", "joint_names", "left_knee")),
    ("fps", ("gt.npz", "fps", "video.json")),
])
def test_bad_motion_fails_on_one_line(with_motion, tmp_path, capsys, damage, needles):
    seq = copy_sequence(with_motion("stairs_up"), tmp_path)
    gt_path = seq / "video" / "gt.npz"
    z = dict(np.load(gt_path))
    if damage == "nan":
        z["joint_pos"][7, 2, 1] = np.nan
    elif damage == "missing_joint":
        z["joint_names"] = np.array([n if n != "left_knee" else "knee_l" for n in z["joint_names"]])
    else:
        z["fps"] = np.array(30.0)
    np.savez(gt_path, **z)
    code, err = run_cli(["retarget", str(seq)], capsys)
    _assert_failed_cleanly(code, err, seq, *needles)


def test_unknown_robot_fails_before_anything(with_motion, tmp_path, capsys):
    seq = copy_sequence(with_motion("stairs_up"), tmp_path)
    code, err = run_cli(["retarget", str(seq), "--robot", "h1"], capsys)
    _assert_failed_cleanly(code, err, seq, "robot", "h1")


def test_nothing_to_retarget(composed, tmp_path, capsys):
    seq = copy_sequence(composed("stairs_up", 0), tmp_path)
    shutil.rmtree(seq / "video", ignore_errors=True)
    code, err = run_cli(["retarget", str(seq)], capsys)
    _assert_failed_cleanly(code, err, seq, "gt.npz", "grail generate")


def test_damaged_motion_file_is_one_clean_error(tmp_path):
    _spin_motion().save(tmp_path)
    data = (tmp_path / "motion.npz").read_bytes()
    (tmp_path / "motion.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(GrailError, match="motion.npz: cannot read"):
        RobotMotion.load(tmp_path)


def test_library_defaults_are_the_stage_quality_targets():
    from dataclasses import asdict

    from grail.library.build import Thresholds

    active = {k: v for k, v in asdict(Thresholds()).items() if v is not None}
    assert active == asdict(Bounds())


# ----------------------------------------------------------------------------- building blocks


def test_robot_offsets_in_targets_match_the_model():
    from grail.retarget.targets import FOOT_SITE_FORWARD, PALM_FROM_WRIST, PELVIS_ABOVE_HIPS, PELVIS_BOTTOM

    model = robot_model()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    assert model.site("left_palm").pos[0] == pytest.approx(PALM_FROM_WRIST)
    foot = data.site_xpos[model.site("left_foot").id] - data.xpos[model.body("left_ankle_pitch_link").id]
    assert foot[0] == pytest.approx(FOOT_SITE_FORWARD, abs=1e-4)
    pelvis_geom = model.geom("pelvis_collision")
    assert -pelvis_geom.pos[2] + pelvis_geom.size[0] == pytest.approx(PELVIS_BOTTOM)
    hips = data.xpos[model.body("left_hip_roll_link").id][2]
    assert data.xpos[model.body("pelvis").id][2] - hips == pytest.approx(PELVIS_ABOVE_HIPS, abs=1e-4)


def test_stance_intervals_blend_and_lock():
    from grail.retarget.targets import _blend, _lock_stance, intervals

    flags = np.array([0, 1, 1, 0, 0, 0, 1, 1, 1, 0], bool)
    assert intervals(flags) == [(1, 3), (6, 9)]
    assert intervals(np.ones(4, bool)) == [(0, 4)] and intervals(np.zeros(3, bool)) == []
    ramp = _blend(flags, fps=8.0)  # 0.25 s at 8 fps: two frames either side
    assert np.all(ramp[flags] == 1.0) and ramp[0] == pytest.approx(2 / 3) and 0 < ramp[4] < ramp[3] < 1
    pos = np.arange(30, dtype=float).reshape(10, 3)
    quat = np.tile([1.0, 0, 0, 0], (10, 1))
    quat[7] = [-1.0, 0, 0, 0]  # the same rotation, other hemisphere: must not cancel in the mean
    locked, locked_q = _lock_stance(pos, quat, flags)
    assert np.allclose(locked[6:9], pos[6:9].mean(axis=0)) and np.allclose(locked[3:6], pos[3:6])
    assert np.allclose(np.abs(locked_q[6:9, 0]), 1.0)


def test_object_surface_nearest_point_normal_and_inside():
    from grail.retarget.surfaces import ObjectSurface

    spec = mujoco.MjSpec()
    spec.worldbody.add_body(name="box").add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1, 0.05, 0.05])
    surface = ObjectSurface(spec.compile(), "box")
    points = np.array([[0.0, 0.01, 0.08], [0.0, 0.0, 0.03], [0.13, 0.0, 0.0]])
    closest, normal = surface.nearest(points)
    assert np.allclose(closest, [[0, 0.01, 0.05], [0, 0, 0.05], [0.1, 0, 0]], atol=1e-9)
    assert np.allclose(normal, [[0, 0, 1], [0, 0, 1], [1, 0, 0]], atol=1e-9)  # outward, also from inside
    assert surface.contains(points).tolist() == [False, True, False]


def test_per_frame_limit_matches_a_fresh_measurement_to_first_order():
    import mink
    from grail.retarget.frame_limit import PerFrameLimit
    from grail.retarget.solver import self_collision_pairs

    model = robot_model()
    configuration = mink.Configuration(model)
    q = model.qpos0.copy()
    q[joint_qpos_indices(model)] = G1.default_pose("knees_bent")[1]
    q[joint_qpos_indices(model)[G1.joint_names.index("left_shoulder_roll_joint")]] = -0.05  # arm near the hip
    configuration.update(q)

    def limit():
        return mink.CollisionAvoidanceLimit(model, self_collision_pairs(model), gain=0.5,
                                            minimum_distance_from_collisions=0.0, collision_detection_distance=0.2)

    cached = PerFrameLimit(limit(), shrink=0.5)
    first = cached.compute_qp_inequalities(configuration, 1.0)
    rows = np.isfinite(first.h)
    assert rows.sum() >= 2
    dq = np.zeros(model.nv)
    dq[6 + G1.joint_names.index("left_shoulder_roll_joint")] = -0.01  # the arm swings in by 0.01 rad
    cached.advanced(dq)
    predicted = cached.compute_qp_inequalities(configuration, 1.0).h[rows]
    configuration.integrate_inplace(dq, 1.0)
    measured = limit().compute_qp_inequalities(configuration, 1.0).h[rows]
    assert np.any(np.abs(predicted - first.h[rows]) > 1e-4)  # the step did use some of the gap
    assert np.allclose(predicted, measured, atol=5e-4)


def test_hand_orientation_is_free_without_a_known_object(with_motion, tmp_path):
    from grail.retarget.targets import TaskWeights, build_targets

    seq = copy_sequence(with_motion("pickup_table"), tmp_path)
    gt_path = seq / "video" / "gt.npz"
    z = dict(np.load(gt_path))
    z["contact_object"] = -np.ones_like(z["contact_object"])  # contact, but with nothing known
    np.savez(gt_path, **z)
    motion = load_human_motion(seq)
    assert motion.contact["left_hand"].any()
    targets = build_targets(motion, TaskWeights(), surfaces={}, hands={})
    assert np.all(targets.frames["left_hand"].orientation_cost == 0)


def test_reconstruction_is_preferred_over_ground_truth(with_motion, tmp_path):
    seq = copy_sequence(with_motion("stairs_up"), tmp_path)
    (seq / "recon").mkdir()
    z = dict(np.load(seq / "video" / "gt.npz"))
    z["joint_pos"] = z["joint_pos"] + np.array([0.0, 0.02, 0.0])  # the reconstruction, 2 cm to the left
    np.savez(seq / "recon" / "hoi.npz", **z)
    human = load_human_motion(seq)
    assert human.source == "recon/hoi.npz"
    assert np.allclose(human.joints["pelvis"], z["joint_pos"][:, list(z["joint_names"]).index("pelvis")])


@pytest.mark.parametrize("damage, needles", [
    ("object_index", ("gt.npz", "contact_object", "out of range")),
    ("truncated", ("gt.npz", "cannot read")),
    ("contact_object_shape", ("gt.npz", "contact_object", "shape")),
])
def test_more_bad_motion_files(with_motion, tmp_path, capsys, damage, needles):
    seq = copy_sequence(with_motion("pickup_table"), tmp_path)
    gt_path = seq / "video" / "gt.npz"
    if damage == "truncated":
        data = gt_path.read_bytes()
        gt_path.write_bytes(data[: len(data) // 3])
    else:
        z = dict(np.load(gt_path))
        if damage == "object_index":
            z["contact_object"][40:50, 2] = 3
        else:
            z["contact_object"] = z["contact_object"][:, :2]
        np.savez(gt_path, **z)
    code, err = run_cli(["retarget", str(seq)], capsys)
    _assert_failed_cleanly(code, err, seq, *needles)


def test_replay_puts_the_video_beside_the_robot(with_motion, retargeted, tmp_path):
    from grail.render.video_io import VideoWriter, read_frames, read_video_info
    from grail.retarget.replay import write_replay

    motion, _, Q, scene = retargeted("pickup_table")
    video = tmp_path / "source.mp4"
    with VideoWriter(video, motion.fps, 96, 54) as writer:
        for _ in range(12):
            writer.write(np.full((54, 96, 3), (200, 30, 30), np.uint8))  # a red "video"
    out = tmp_path / "replay.mp4"
    objects = {motion.object_name: (motion.object_pos_w[:12], motion.object_quat_w[:12])}
    info = write_replay(scene, Q[:12], objects, motion.fps, out, video, 160, 90)
    assert info["frames"] == 12 and read_video_info(out)["width"] == 320
    frame = next(iter(read_frames(out)))
    left, right = frame[:, :160].astype(int), frame[:, 160:].astype(int)
    assert left[..., 0].mean() > 150 and left[..., 1].mean() < 80  # the source video, resized
    assert right.std() > 10  # the rendered scene, not a flat colour
