"""The generate stage (grail.video.generate) and the procedural animator behind it
(grail.video.procedural): ground truth that obeys its own contract and the physical limits on
every template, determinism, the stage end to end (files, records, skip/force, CLI), bad input
refused on one line with nothing written, and rendered masks that agree with the joints."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from _video_helpers import (assert_clean_failure, copy_sequence, edit_spec, frames_list, gt_differences,
                            hands_holding, run_cli)
from conftest import TEMPLATES, TEST_SIZE
from grail.errors import GrailError
from grail.rotations import matrix_from_quat
from grail.scene.spec import ResolvedPose, load_resolved
from grail.render.video_io import read_video_info
from grail.video.generate import GenerateOptions, generate_sequence
from grail.video.geometry import SceneGeometry
from grail.video.gt import CONTACT_NAMES, GroundTruth
from grail.video.metrics import LIMITS, check, consistency_metrics
from grail.video.procedural import synthesize

STEPPING_PHASES = ("walk", "turn")  # the feet alternate; a walk has no flight phase
MIN_JOINT_MASK_FRACTION = 0.98


# ---- the procedural ground truth on every template ------------------------------------------


@pytest.fixture(scope="module")
def synthesized(composed):
    """template -> (Synthesis, scene dir) for seed 0, synthesized once per module."""
    cache: dict = {}

    def get(template: str):
        if template not in cache:
            scene = composed(template, 0) / "scene"
            cache[template] = (synthesize(scene), scene)
        return cache[template]

    return get


@pytest.mark.parametrize("template", TEMPLATES)
def test_ground_truth_contract(synthesized, template):
    syn, scene = synthesized(template)
    gt = syn.gt
    gt.validate()
    spec = load_resolved(scene / "spec.yaml")
    assert gt.fps == spec.fps == 24
    assert gt.frames == round(spec.duration_s * spec.fps)
    assert gt.contact_names == list(CONTACT_NAMES)
    assert gt.object_names == [o.name for o in spec.objects]
    assert gt.bone_names == list(syn.character.bone_names)
    assert set(syn.objects) == set(gt.object_names)
    assert gt.object_held.dtype == bool and gt.contact.dtype == bool
    assert all(str(p) for p in gt.phase), "a frame without a phase"
    # a hand's object index is set exactly while that hand is in contact (feet and pelvis: -1)
    assert np.all((gt.contact_object >= 0) <= gt.contact), "contact_object set without contact"
    for name in ("left_foot", "right_foot", "pelvis"):
        assert np.all(gt.contact_object[:, gt.contact_names.index(name)] == -1), name
    assert np.all(gt.contact_object < len(gt.object_names))
    # unit quaternions
    for name in ("bone_quat_w", "root_quat", "joint_rot", "object_quat"):
        q = getattr(gt, name)
        if q.size:
            np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("template", TEMPLATES)
def test_physical_consistency(synthesized, template):
    syn, scene = synthesized(template)
    metrics = consistency_metrics(syn.gt, syn.character, SceneGeometry.load(scene))
    json.dumps(metrics)
    for key in LIMITS:
        assert key in metrics, key
    violations = check(metrics)
    assert violations == [], f"{template}: " + "; ".join(violations)


@pytest.mark.parametrize("template", TEMPLATES)
def test_feet_contacts(synthesized, template):
    gt = synthesized(template)[0].gt
    left, right = gt.contact_of("left_foot").astype(bool), gt.contact_of("right_foot").astype(bool)
    assert left[0] and right[0], "both feet stand at frame 0"
    assert left[-1] and right[-1], "both feet stand at the last frame"
    stepping = np.isin(gt.phase, STEPPING_PHASES)
    assert stepping.any(), "no walking at all"
    flight = stepping & ~left & ~right
    assert not flight.any(), f"both feet in the air while walking at frames {frames_list(flight)}"


@pytest.mark.parametrize("template", TEMPLATES)
def test_objects_held_and_at_rest(synthesized, template):
    syn, _ = synthesized(template)
    gt, spec = syn.gt, syn.spec
    for o, name in enumerate(gt.object_names):
        held = gt.object_held[:, o].astype(bool)
        by_hands = hands_holding(gt, o)
        assert np.array_equal(held, by_hands), (
            f"{name}: object_held differs from the hand contacts at frames {frames_list(held != by_hands)}")
        first = int(np.argmax(held)) if held.any() else gt.frames
        item = next(i for i in spec.objects if i.name == name)
        pos = np.asarray(item.pose.pos, float)
        quat = np.asarray(item.pose.quat, float)
        quat /= np.linalg.norm(quat)
        before = slice(0, first)
        moved = np.any(gt.object_pos[before, o] != pos, axis=1)
        assert not moved.any(), (
            f"{name} moves before its first grasp (frame {first}): frames {frames_list(moved)}, up to "
            f"{np.linalg.norm(gt.object_pos[before, o] - pos, axis=1).max():.4f} m from its spec pose")
        q = gt.object_quat[before, o]
        assert np.array_equal(q, np.broadcast_to(q[:1], q.shape)), f"{name} turns before its first grasp"
        if first:
            assert min(np.abs(q[0] - quat).max(), np.abs(q[0] + quat).max()) < 1e-9, (name, q[0], quat)
        if held.any():  # a grasped object moves with the hand: it leaves its spec pose
            assert np.linalg.norm(gt.object_pos[-1, o] - pos) > 0.02 or not held[-1], name


def test_a_put_down_object_rests_wholly_on_the_top(synthesized):
    """Nothing holds a put-down object up but the top under it: every vertex lies over it (the walk-up
    spot, chosen before the final heading turned the object, left it 7 cm over the edge)."""
    from scipy.spatial import ConvexHull

    syn, _ = synthesized("place_table")
    name, poses = next(iter(syn.objects.items()))
    body, final = syn.world.objects[name], poses[-1]
    verts = body.local @ final[:3, :3].T + final[:3, 3]
    table = next(f for f in syn.world.furniture.values() if abs(verts[:, 2].min() - f.top) < 0.01)
    outline = ConvexHull(table.world[table.world[:, 2] > table.top - 0.01][:, :2]).equations
    outside = (verts[:, :2] @ outline[:, :2].T + outline[:, 2]).max(1)
    assert outside.max() < -0.015, f"{name} overhangs the table top by {100 * outside.max():.1f} cm"


# ---- determinism ----------------------------------------------------------------------------


def test_synthesis_is_deterministic(synthesized, composed):
    first = synthesized("pickup_table")[0].gt
    again = synthesize(composed("pickup_table", 0) / "scene").gt
    assert gt_differences(first, again) == []
    # a seed with a random choice in the plan (sit: stand up again or stay seated) as well
    chair = synthesized("sit_chair")[0].gt
    assert gt_differences(chair, synthesize(composed("sit_chair", 0) / "scene").gt) == []


def test_different_seeds_move_differently(synthesized, composed):
    a = synthesized("pickup_table")[0].gt
    b = synthesize(composed("pickup_table", 1) / "scene").gt
    n = min(a.frames, b.frames)
    gap = np.linalg.norm(a.root_pos[:n] - b.root_pos[:n], axis=1)
    assert gap.max() > 0.05, f"seeds 0 and 1 walk the same path (max root distance {gap.max():.4f} m)"


# ---- the stage end to end --------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(composed, tmp_path_factory):
    """A private pickup_table seed-0 sequence after one `grail generate` run: (dir, stderr)."""
    from grail.cli import main

    seq = copy_sequence(composed("pickup_table", 0), tmp_path_factory.mktemp("generate") / "out")
    err = io.StringIO()  # module scope has no capsys; the CLI's console writes to sys.stderr
    with contextlib.redirect_stderr(err):
        main(["generate", str(seq)])  # returns normally on success; bad input would SystemExit
    return seq, err.getvalue()


def test_cli_generate_writes_video_json_and_gt(generated, synthesized):
    seq, err = generated
    assert "error" not in err, err
    video = seq / "video"
    assert sorted(p.name for p in video.iterdir()) == ["gt.npz", "video.json", "video.mp4"]
    assert not [p.name for p in seq.iterdir() if p.name.startswith((".tmp-", ".trash-"))]

    gt = GroundTruth.load(video / "gt.npz")
    assert gt_differences(gt, synthesized("pickup_table")[0].gt) == [], "gt.npz is not the synthesized ground truth"

    info = read_video_info(video / "video.mp4")
    assert info["frames"] == gt.frames
    assert info["fps"] == pytest.approx(24.0)
    assert (info["width"], info["height"]) == TEST_SIZE

    record = json.loads((video / "video.json").read_text())
    for key in ("backend", "model", "prompt", "seed", "fps", "frames", "resolution", "seconds",
                "physical_consistency", "joint_mask_agreement"):
        assert key in record, key
    spec = load_resolved(seq / "scene" / "spec.yaml")
    assert record["backend"] == "procedural" and isinstance(record["model"], str) and record["model"]
    assert record["prompt"] == spec.prompt and record["prompt"]
    assert record["seed"] == spec.seed == 0
    assert record["fps"] == 24 and record["frames"] == gt.frames
    assert record["resolution"] == list(TEST_SIZE)
    assert record["seconds"] == pytest.approx(gt.frames / 24.0, abs=1e-3)
    pc = record["physical_consistency"]
    assert pc["violations"] == check(pc["metrics"])
    agreement = record["joint_mask_agreement"]
    assert agreement["visible"] > 0
    assert agreement["fraction"] >= MIN_JOINT_MASK_FRACTION, agreement
    # phases tile the clip
    phases = record.get("phases", [])
    assert phases and phases[0]["start_s"] == 0 and phases[-1]["end_s"] == pytest.approx(record["seconds"])

    stage = json.loads((seq / "sequence.json").read_text())["stages"]["video"]
    assert stage["status"] == "done" and stage["error"] is None
    assert set(stage["outputs"]) == {"gt.npz", "video.json", "video.mp4"}


def test_stage_rerun_is_skipped_and_force_redoes_it(generated, capsys):
    seq, _ = generated
    video = seq / "video"
    stamp = {p.name: p.stat().st_mtime_ns for p in video.iterdir()}
    _, again = generate_sequence(seq, GenerateOptions())
    assert again.skipped and again.output_dir == video
    # the CLI on the output root finds the sequence and skips it too
    code, err = run_cli(["generate", str(seq.parent)], capsys)
    assert code is None and "skipped" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in video.iterdir()} == stamp

    before = GroundTruth.load(video / "gt.npz")
    _, forced = generate_sequence(seq, GenerateOptions(), force=True)
    assert not forced.skipped and forced.output_dir == video
    assert {p.name: p.stat().st_mtime_ns for p in video.iterdir()} != stamp
    assert gt_differences(GroundTruth.load(video / "gt.npz"), before) == []
    assert read_video_info(video / "video.mp4")["frames"] == before.frames
    assert not [p.name for p in seq.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


# ---- bad input --------------------------------------------------------------------------------


@pytest.fixture
def table_copy(composed, tmp_path) -> Path:
    return copy_sequence(composed("pickup_table", 0), tmp_path / "out")


def test_unknown_backend(table_copy, capsys):
    code, err = run_cli(["generate", str(table_copy), "--backend", "nope"], capsys)
    assert_clean_failure(code, err, table_copy, "--backend", "nope", "procedural")


def test_not_a_sequence(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run_cli(["generate", str(empty)], capsys)
    assert_clean_failure(code, err, empty, "empty")
    assert list(empty.iterdir()) == []
    missing = tmp_path / "missing"
    code, err = run_cli(["generate", str(missing)], capsys)
    assert_clean_failure(code, err, None, "missing")
    assert not missing.exists()
    with pytest.raises(GrailError, match="not a sequence"):
        generate_sequence(empty)
    assert list(empty.iterdir()) == []


def test_object_too_heavy(table_copy, capsys):
    def heavy(spec):
        spec.objects[0].mass = 20.0

    edit_spec(table_copy, heavy)
    code, err = run_cli(["generate", str(table_copy)], capsys)
    line = assert_clean_failure(code, err, table_copy, "spec.yaml", "objects[0]", "heavy", "20.00 kg")
    assert "mass" in line


def test_chair_facing_an_obstacle(composed, tmp_path, capsys):
    seq = copy_sequence(composed("sit_chair", 0), tmp_path / "out")

    def blocked(spec):
        chair = next(f for f in spec.furniture if f.kind == "chair")
        R = matrix_from_quat(np.asarray(chair.pose.quat, float))
        pos = np.asarray(chair.pose.pos, float) + R @ np.array([0.45, 0.0, 0.0])
        other = chair.model_copy(deep=True, update={"name": "chair_in_front",
                                                    "pose": ResolvedPose(pos=tuple(pos.tolist()), quat=chair.pose.quat)})
        spec.furniture.append(other)

    edit_spec(seq, blocked)
    code, err = run_cli(["generate", str(seq)], capsys)
    assert_clean_failure(code, err, seq, "spec.yaml", "furniture", "chair_in_front", "no room")


def test_duration_too_short(table_copy, capsys):
    def short(spec):
        spec.duration_s = 1.0

    edit_spec(table_copy, short)
    code, err = run_cli(["generate", str(table_copy)], capsys)
    assert_clean_failure(code, err, table_copy, "spec.yaml", "duration_s", "1.0 s")


def test_failed_run_keeps_the_previous_video(generated, tmp_path, capsys):
    """A sequence whose inputs changed into bad ones keeps its earlier video/ untouched."""
    seq = tmp_path / generated[0].name
    shutil.copytree(generated[0], seq)
    before = {p.name: p.read_bytes() for p in (seq / "video").iterdir()}

    def short(spec):
        spec.duration_s = 1.0

    edit_spec(seq, short)
    code, err = run_cli(["generate", str(seq)], capsys)
    assert code == 1 and "duration_s" in err
    assert {p.name: p.read_bytes() for p in (seq / "video").iterdir()} == before
    assert not [p.name for p in seq.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
    assert json.loads((seq / "sequence.json").read_text())["stages"]["video"]["status"] == "failed"


# ---- rendered masks against the joints ---------------------------------------------------------


def test_joint_mask_agreement_on_every_frame(synthesized):
    from grail.rotations import quats_from_matrices
    from grail.video.render import VideoRenderer, joint_mask_agreement

    syn, scene = synthesized("stairs_up")
    gt = syn.gt
    bones = gt.bone_world()
    masks, depths = [], []
    with VideoRenderer(scene, syn.character, syn.spec.character.colors, *TEST_SIZE) as r:
        for i in range(gt.frames):
            objects = {n: (T[i, :3, 3], quats_from_matrices(T[i, :3, :3])) for n, T in syn.objects.items()}
            mask, _, depth = r.segmentation_and_depth(bones[i], objects)
            masks.append(mask)
            depths.append(depth)
        camera = r.camera
    masks = np.stack(masks)
    assert masks.reshape(gt.frames, -1).any(axis=1).all(), "the character is missing from some frames"
    agreement = joint_mask_agreement(gt.joint_pos, camera, masks, np.stack(depths), range(gt.frames),
                                     names=gt.joint_names)
    assert agreement["frames"] == gt.frames
    assert agreement["visible"] >= 0.5 * gt.frames * len(gt.joint_names), agreement
    assert agreement["fraction"] >= MIN_JOINT_MASK_FRACTION, agreement
