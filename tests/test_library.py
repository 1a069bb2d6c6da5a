"""The motion library: peer-format converters (round trips, quaternion order on disk, FK of the
CSV reader against MuJoCo, bad input) and the library build (thresholds, rejects, atomicity, CLI).

Test motions are made here: smooth joint trajectories inside the G1 limits, a moving root with a
non-symmetric rotation, and body poses by forward kinematics written directly against MuJoCo
(not through the code under test).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from grail.errors import GrailError
from grail.library import formats as F
from grail.library.build import LibraryIndex, Thresholds, build_library
from grail.library.cli import app
from grail.robot.g1 import G1
from grail.robot.model import robot_model
from grail.robot.motion import RobotMotion

FPS = 30.0
TOL = 1e-5
# A rotation with distinct components (axis (1, 2, 3), 1.1 rad): any xyzw/wxyz mix-up changes it.
KNOWN_ROTVEC = 1.1 * np.array([1.0, 2.0, 3.0]) / np.linalg.norm([1.0, 2.0, 3.0])
GOOD = {"hand_object_error_mean_mm": 8.0, "hand_object_error_max_mm": 15.0, "foot_slide_max_cm_s": 0.4,
        "penetration_max_mm": 2.0, "joint_limit_violations": 0, "velocity_limit_violations": 0,
        "self_collisions": 0, "ik_residual_mean_mm": 5.0}


# ----------------------------------------------------------------------------- test data


def wxyz_of_rotvec(rotvec: np.ndarray) -> np.ndarray:
    xyzw = Rotation.from_rotvec(np.atleast_2d(rotvec)).as_quat()
    q = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    q[q[:, 0] < 0] *= -1
    return q


def mujoco_fk(root_pos: np.ndarray, root_quat: np.ndarray, joints: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Body poses straight from MuJoCo: qpos by joint name, mj_kinematics, xpos/xquat."""
    model = robot_model()
    data = mujoco.MjData(model)
    adr = [model.joint(name).qposadr[0] for name in G1.joint_names]
    T = len(joints)
    pos, quat = np.zeros((T, model.nbody - 1, 3)), np.zeros((T, model.nbody - 1, 4))
    for t in range(T):
        data.qpos[:] = model.qpos0
        data.qpos[0:3], data.qpos[3:7] = root_pos[t], root_quat[t]
        data.qpos[adr] = joints[t]
        mujoco.mj_kinematics(model, data)
        pos[t], quat[t] = data.xpos[1:], data.xquat[1:]
    return [model.body(b).name for b in range(1, model.nbody)], pos, quat


def smooth_trajectory(T: int = 36, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(root_pos, root_quat wxyz, joints) smooth in time; joints within 40% of each joint's range."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[:, None] / FPS
    mid, half = (G1.lower + G1.upper) / 2, (G1.upper - G1.lower) / 2
    joints = mid + 0.4 * half * np.sin(2 * np.pi * rng.uniform(0.2, 0.8, 29) * t + rng.uniform(0, 2 * np.pi, 29))
    root_pos = np.column_stack([0.3 * t[:, 0], 0.1 * np.sin(2 * t[:, 0]), 0.76 + 0.02 * np.cos(3 * t[:, 0])])
    root_quat = wxyz_of_rotvec(KNOWN_ROTVEC + 0.3 * t * rng.normal(size=3))
    return root_pos, root_quat, joints


def make_motion(T: int = 36, seed: int = 0, task: str | None = None) -> RobotMotion:
    root_pos, root_quat, joints = smooth_trajectory(T, seed)
    names, pos, quat = mujoco_fk(root_pos, root_quat, joints)
    extra = {"task": task} if task else {}
    return RobotMotion(fps=FPS, joint_names=list(G1.joint_names), body_names=names, joint_pos=joints,
                       body_pos_w=pos, body_quat_w=quat, object_pos_w=np.zeros((T, 3)),
                       object_quat_w=np.tile([1.0, 0, 0, 0], (T, 1)), contact=np.zeros((T, 0), bool),
                       contact_names=[], robot=G1.name, source="", extra_meta=extra)


@pytest.fixture(scope="module")
def motion() -> RobotMotion:
    return make_motion()


def assert_same_motion(read: RobotMotion, ref: RobotMotion) -> None:
    """Joints by name, root pose, and every body pose by name, to TOL."""
    order = [list(read.joint_names).index(j) for j in ref.joint_names]
    np.testing.assert_allclose(read.joint_pos[:, order], ref.joint_pos, atol=TOL)
    np.testing.assert_allclose(read.fps, ref.fps)
    bodies = [list(read.body_names).index(b) for b in ref.body_names]
    np.testing.assert_allclose(read.body_pos_w[:, bodies], ref.body_pos_w, atol=TOL)
    np.testing.assert_allclose(read.body_quat_w[:, bodies], ref.body_quat_w, atol=TOL)
    np.testing.assert_allclose(read.root_pos, ref.root_pos, atol=TOL)
    np.testing.assert_allclose(read.root_quat, ref.root_quat, atol=TOL)


# ----------------------------------------------------------------------------- converters


@pytest.mark.parametrize("fmt", F.FORMATS)
def test_round_trip(fmt: str, motion: RobotMotion, tmp_path: Path) -> None:
    path = tmp_path / f"m{F.SUFFIXES[fmt]}"
    F.write_motion(motion, fmt, path)
    read = F.read_motion(path, fmt, fps=FPS)
    assert_same_motion(read, motion)
    assert list(read.joint_names) == list(G1.joint_names)
    if fmt == "beyondmimic-npz":  # the velocities travel with the file
        np.testing.assert_allclose(read.joint_vel, motion.joint_vel, atol=1e-4)
        np.testing.assert_allclose(read.body_ang_vel_w, motion.body_ang_vel_w, atol=1e-4)
    else:  # rebuilt by finite differences from the same poses
        np.testing.assert_allclose(read.body_lin_vel_w, motion.body_lin_vel_w, atol=1e-3)


def test_quaternion_order_on_disk(motion: RobotMotion, tmp_path: Path) -> None:
    """xyzw in CSV, GMR and release files; wxyz in the npz; readers give back the same rotation."""
    known_wxyz = wxyz_of_rotvec(KNOWN_ROTVEC)[0]
    known_xyzw = Rotation.from_rotvec(KNOWN_ROTVEC).as_quat()
    assert np.allclose(known_xyzw, known_wxyz[[1, 2, 3, 0]]) and not np.allclose(known_xyzw, known_wxyz)
    np.testing.assert_allclose(motion.root_quat[0], known_wxyz, atol=1e-12)  # frame 0 is the known rotation

    paths = {fmt: tmp_path / f"{fmt}{F.SUFFIXES[fmt]}" for fmt in F.FORMATS}
    for fmt, path in paths.items():
        F.write_motion(motion, fmt, path)
    csv_row = np.loadtxt(paths["csv"], delimiter=",")[0]
    np.testing.assert_allclose(csv_row[3:7], known_xyzw, atol=1e-7)
    for fmt in ("gmr", "grail-release"):
        with open(paths[fmt], "rb") as handle:
            np.testing.assert_allclose(pickle.load(handle)["root_rot"][0], known_xyzw, atol=1e-12)
    with np.load(paths["beyondmimic-npz"]) as z:
        pelvis = list(z["body_names"]).index("pelvis")
        np.testing.assert_allclose(z["body_quat_w"][0, pelvis], known_wxyz, atol=1e-6)

    # Readers: the rotation read back moves a vector as the known rotation does.
    v = np.array([0.3, -0.7, 0.2])
    expected = Rotation.from_rotvec(KNOWN_ROTVEC).apply(v)
    for fmt, path in paths.items():
        q = F.read_motion(path, fmt, fps=FPS).root_quat[0]
        got = np.zeros(3)
        mujoco.mju_rotVecQuat(got, v, q)
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=fmt)


def test_csv_reader_fk_matches_mujoco(tmp_path: Path) -> None:
    """Rows written by hand (not by our writer); bodies compared with mj_kinematics run here."""
    root_pos, root_quat, joints = smooth_trajectory(T=12, seed=3)
    rows = np.column_stack([root_pos, root_quat[:, [1, 2, 3, 0]], joints])
    path = tmp_path / "hand.csv"
    path.write_text("\n".join(",".join(repr(float(x)) for x in row) for row in rows) + "\n")
    read = F.read_beyondmimic_csv(path, fps=50.0)
    names, pos, quat = mujoco_fk(root_pos, root_quat, joints)
    assert read.body_names == names and read.fps == 50.0 and read.frames == 12
    np.testing.assert_allclose(read.body_pos_w, pos, atol=1e-9)
    np.testing.assert_allclose(read.body_quat_w, quat, atol=1e-9)
    hand = names.index("left_wrist_yaw_link")
    in_root = np.einsum("tji,tj->ti", Rotation.from_quat(root_quat[:, [1, 2, 3, 0]]).as_matrix(), pos[:, hand] - root_pos)
    assert np.ptp(in_root, axis=0).max() > 0.05  # the joints did move the hand relative to the root
    assert read.contact.shape == (12, 0) and read.object_name is None
    np.testing.assert_allclose(read.object_quat_w, np.tile([1.0, 0, 0, 0], (12, 1)))


def test_npz_without_names_assumes_model_order(motion: RobotMotion, tmp_path: Path) -> None:
    full = tmp_path / "full.npz"
    F.write_beyondmimic_npz(motion, full)
    with np.load(full) as z:
        plain = {k: z[k] for k in F.NPZ_KEYS}  # what mjlab's csv_to_npz writes: no name arrays
    bare = tmp_path / "bare.npz"
    np.savez(bare, **plain)
    read = F.read_beyondmimic_npz(bare)
    model = robot_model()
    assert read.body_names == [model.body(b).name for b in range(1, model.nbody)]
    assert_same_motion(read, motion)

    # Joints stored in another order, with names: the reader puts them back in SDK order.
    perm = np.random.default_rng(1).permutation(29)
    shuffled = dict(plain, joint_pos=plain["joint_pos"][:, perm], joint_vel=plain["joint_vel"][:, perm],
                    joint_names=np.array(G1.joint_names)[perm], body_names=np.array(read.body_names))
    np.savez(tmp_path / "shuffled.npz", **shuffled)
    assert_same_motion(F.read_beyondmimic_npz(tmp_path / "shuffled.npz"), motion)


def test_gmr_local_body_pos_is_fk_with_root_at_origin(motion: RobotMotion, tmp_path: Path) -> None:
    path = tmp_path / "m.pkl"
    F.write_gmr_pickle(motion, path)
    with open(path, "rb") as handle:
        data = pickle.load(handle)
    assert data["link_body_list"] == list(motion.body_names)
    T = motion.frames
    _, local, _ = mujoco_fk(np.zeros((T, 3)), np.tile([1.0, 0, 0, 0], (T, 1)), motion.joint_pos)
    np.testing.assert_allclose(data["local_body_pos"], local, atol=1e-9)


def _bad_csv(tmp_path: Path, motion: RobotMotion, edit) -> Path:
    path = tmp_path / "bad.csv"
    F.write_beyondmimic_csv(motion, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def test_csv_bad_input(motion: RobotMotion, tmp_path: Path) -> None:
    def nan_in_knee(lines):
        cells = lines[4].split(",")
        cells[7 + G1.joint_names.index("left_knee_joint")] = "nan"
        return lines[:4] + [",".join(cells)] + lines[5:]

    cases = [
        (nan_in_knee, "left_knee_joint", "row 5"),
        (lambda lines: lines[:2] + [lines[2] + ",0.0"] + lines[3:], "columns", "37 columns, expected 36"),
        (lambda lines: ["x,y,z" + ",0" * 33] + lines, "root_pos.x", "no header"),
        (lambda lines: [], "rows", "no frames"),
    ]
    for edit, field, words in cases:
        path = _bad_csv(tmp_path, motion, edit)
        with pytest.raises(GrailError) as err:
            F.read_beyondmimic_csv(path, FPS)
        assert err.value.file == str(path) and err.value.field == field and words in err.value.reason, err.value
    good = _bad_csv(tmp_path, motion, lambda lines: lines)
    for fps in (0.0, -5.0, float("nan")):
        with pytest.raises(GrailError) as err:
            F.read_beyondmimic_csv(good, fps)
        assert err.value.file == str(good) and err.value.field == "fps"
    with pytest.raises(GrailError) as err:
        F.read_beyondmimic_csv(good, FPS, robot="h1")
    assert err.value.file == str(good) and err.value.field == "robot" and "h1" in err.value.reason


def _pickle(path: Path, data) -> Path:
    path.write_bytes(pickle.dumps(data))
    return path


def test_pickle_and_npz_bad_input(motion: RobotMotion, tmp_path: Path) -> None:
    gmr, rel, npz = tmp_path / "g.pkl", tmp_path / "r.pkl", tmp_path / "m.npz"
    F.write_gmr_pickle(motion, gmr)
    F.write_grail_release_pickle(motion, rel)
    F.write_beyondmimic_npz(motion, npz)
    with open(gmr, "rb") as h:
        g = pickle.load(h)
    with open(rel, "rb") as h:
        r = pickle.load(h)
    with np.load(npz) as z:
        n = dict(z)
    nan_rot = r["root_rot"].copy()
    nan_rot[3, 1] = np.nan
    np.savez(tmp_path / "no_quat.npz", **{k: v for k, v in n.items() if k != "body_quat_w"})
    cases = [
        (F.read_gmr_pickle, _pickle(tmp_path / "a.pkl", {k: v for k, v in g.items() if k != "dof_pos"}), "dof_pos", "missing"),
        (F.read_gmr_pickle, _pickle(tmp_path / "b.pkl", dict(g, dof_pos=g["dof_pos"][:, :23])), "dof_pos", "expected (T, 29)"),
        (F.read_gmr_pickle, _pickle(tmp_path / "c.pkl", dict(g, fps=0)), "fps", "positive"),
        (F.read_gmr_pickle, _pickle(tmp_path / "d.pkl", dict(g, root_pos=g["root_pos"][:-1])), "root_pos", "expected"),
        (F.read_grail_release_pickle, _pickle(tmp_path / "e.pkl", dict(r, root_rot=nan_rot)), "root_rot", "frame 3"),
        (F.read_grail_release_pickle, _pickle(tmp_path / "f.pkl", dict(r, root_rot=2 * r["root_rot"])), "root_rot", "unit"),
        (F.read_grail_release_pickle, _pickle(tmp_path / "g.pkl", {k: v for k, v in r.items() if k != "root_trans_offset"}),
         "root_trans_offset", "missing"),
        (F.read_beyondmimic_npz, tmp_path / "no_quat.npz", "body_quat_w", "missing"),
    ]
    for reader, path, field, words in cases:
        with pytest.raises(GrailError) as err:
            reader(path)
        assert err.value.file == str(path) and err.value.field == field and words in err.value.reason, err.value
    # A named single motion ({name: motion}) is unwrapped; corrupt files are GrailError, not a crash.
    assert F.read_grail_release_pickle(_pickle(tmp_path / "named.pkl", {"clip_0": r})).frames == motion.frames
    for reader in (F.read_gmr_pickle, F.read_beyondmimic_npz):
        bad = tmp_path / "garbage.bin"
        bad.write_bytes(b"\x80\x04not really" * 10)
        with pytest.raises(GrailError) as err:
            reader(bad)
        assert err.value.file == str(bad)


class _Sneaky:
    def __reduce__(self):
        import os

        return (os.getenv, ("HOME",))


def test_pickles_cannot_run_code(tmp_path: Path) -> None:
    path = _pickle(tmp_path / "evil.pkl", {"fps": 30.0, "dof": _Sneaky()})
    with pytest.raises(GrailError, match="refusing to load os.getenv|refusing to load posix.getenv"):
        F.read_grail_release_pickle(path)


# ----------------------------------------------------------------------------- the library


def make_sequence(root: Path, seq_id: str, motion: RobotMotion, summary: dict | None, task: str = "pickup_table") -> Path:
    seq = root / seq_id
    (seq / "scene").mkdir(parents=True)
    (seq / "scene" / "spec.yaml").write_text(f"task: {task}\nfps: 30\n")
    (seq / "sequence.json").write_text(json.dumps({"format": 1, "id": seq_id}))
    (seq / "robot").mkdir()
    motion.save(seq / "robot")
    if summary is not None:
        (seq / "robot" / "metrics.json").write_text(json.dumps({"summary": summary, "per_frame": {}}))
    return seq


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, motion: RobotMotion) -> Path:
    """An output root with good, failing, null-metric and broken sequences."""
    root = tmp_path_factory.mktemp("out")
    make_sequence(root, "good_a", motion, GOOD)
    make_sequence(root, "good_b", make_motion(T=20, seed=1, task="push_box"), GOOD, task="ignored_since_meta_has_it")
    make_sequence(root, "nulls", motion, dict(GOOD, hand_object_error_mean_mm=None, hand_object_error_max_mm=None),
                  task="stairs_up")
    make_sequence(root, "far_hand", motion, dict(GOOD, hand_object_error_mean_mm=35.0))
    make_sequence(root, "sliding", motion, dict(GOOD, foot_slide_max_cm_s=2.5, self_collisions=2))
    make_sequence(root, "no_metrics", motion, None)
    bad_json = make_sequence(root, "bad_metrics", motion, GOOD)
    (bad_json / "robot" / "metrics.json").write_text("{not json")
    truncated = make_sequence(root, "truncated_npz", motion, GOOD)
    data = (truncated / "robot" / "motion.npz").read_bytes()
    (truncated / "robot" / "motion.npz").write_bytes(data[: len(data) // 2])
    garbage = make_sequence(root, "garbage_npz", motion, GOOD)
    (garbage / "robot" / "motion.npz").write_bytes(b"\x00" * 300)
    nan = make_sequence(root, "nan_pose", motion, GOOD)
    with np.load(nan / "robot" / "motion.npz") as z:
        arrays = dict(z)
    arrays["body_pos_w"][5, 3, 1] = np.nan
    np.savez(nan / "robot" / "motion.npz", **arrays)
    (root / "not_retargeted" / "scene").mkdir(parents=True)
    (root / "not_retargeted" / "sequence.json").write_text("{}")
    return root


def test_build_accepts_and_rejects_with_reasons(corpus: Path, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    index = build_library([corpus], lib, Thresholds())
    assert sorted(index.ids) == ["good_a", "good_b", "nulls"]
    rejected = {Path(r["source"]).name: r["reasons"] for r in index.rejected}
    assert set(rejected) == {"far_hand", "sliding", "no_metrics", "bad_metrics", "truncated_npz", "garbage_npz",
                             "nan_pose", "not_retargeted"}
    assert rejected["far_hand"] == ["hand_object_error_mean_mm 35 > 20"]
    assert rejected["sliding"] == ["foot_slide_max_cm_s 2.5 > 1"]  # self-collisions are reported, not filtered
    assert "metrics.json" in rejected["no_metrics"][0] and "missing" in rejected["no_metrics"][0]
    assert any("metrics.json" in r for r in rejected["bad_metrics"])
    for name in ("truncated_npz", "garbage_npz"):
        assert any("motion.npz" in r for r in rejected[name]), rejected[name]
    assert any("body_pos_w" in r and "NaN" in r for r in rejected["nan_pose"])
    assert len(rejected["not_retargeted"]) == 1 and rejected["not_retargeted"][0].startswith("missing ")

    on_disk = json.loads((lib / "index.json").read_text())
    assert on_disk["version"] == 1 and on_disk["robot"] == G1.name and on_disk["created"]
    assert on_disk["thresholds"]["hand_object_error_mean_mm"] == 20.0
    assert on_disk["motions"] == index.motions and on_disk["rejected"] == index.rejected
    records = {m["id"]: m for m in on_disk["motions"]}
    assert records["good_a"]["task"] == "pickup_table"  # from scene/spec.yaml
    assert records["good_b"]["task"] == "push_box"      # meta.json wins
    assert records["nulls"]["metrics"]["hand_object_error_mean_mm"] is None
    assert records["good_b"]["frames"] == 20 and records["good_b"]["fps"] == FPS
    assert records["good_b"]["seconds"] == pytest.approx(20 / FPS)
    for motion_id, record in records.items():
        for name, entry in record["files"].items():
            copied = lib / entry["path"]
            assert copied.read_bytes() == (corpus / motion_id / "robot" / name).read_bytes()
        assert RobotMotion.load(lib / "motions" / motion_id).frames == record["frames"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_thresholds_config(corpus: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "limits.yaml"
    cfg.write_text("hand_object_error_mean_mm: 40\nself_collisions: 3\nfoot_slide_max_cm_s: null\n")
    limits = Thresholds.from_file(cfg)
    assert limits.hand_object_error_mean_mm == 40 and limits.self_collisions == 3
    assert limits.foot_slide_max_cm_s is None
    limits = Thresholds.from_file(cfg).updated({"foot_slide_max_cm_s": 1.0})
    assert limits.foot_slide_max_cm_s == 1.0  # default kept
    limits = limits.with_overrides(["foot_slide_max_cm_s=3", "ik_residual_mean_mm=6"])
    loose = make_sequence(tmp_path / "more", "loose_ik", make_motion(T=8), dict(GOOD, ik_residual_mean_mm=9.5))
    index = build_library([corpus / "far_hand", corpus / "sliding", loose], tmp_path / "lib", limits)
    assert index.ids == ["far_hand", "sliding"]
    assert index.rejected == [{"id": "loose_ik", "source": str(loose), "reasons": ["ik_residual_mean_mm 9.5 > 6"]}]

    with pytest.raises(GrailError) as err:
        Thresholds().with_overrides(["hand_error=3"])
    assert err.value.field == "hand_error" and err.value.file == "--max" and "unknown threshold" in err.value.reason
    with pytest.raises(GrailError) as err:
        Thresholds().with_overrides(["self_collisions=lots"])
    assert err.value.field == "self_collisions"
    cfg.write_text("penetration_mm: 3\n")
    with pytest.raises(GrailError) as err:
        Thresholds.from_file(cfg)
    assert err.value.file == str(cfg) and err.value.field == "penetration_mm"
    cfg.write_text("penetration_max_mm: -1\n")
    with pytest.raises(GrailError, match="penetration_max_mm"):
        Thresholds.from_file(cfg)


def test_ids_unique_and_stable(corpus: Path, tmp_path: Path, motion: RobotMotion) -> None:
    other = tmp_path / "other"
    make_sequence(other, "good_a", motion, GOOD)
    sources = [corpus / "good_a", other, corpus / "good_a" / "robot"]  # the last is a repeat: used once
    first = build_library(sources, tmp_path / "lib1")
    second = build_library(sources, tmp_path / "lib2")
    assert first.ids == second.ids == ["good_a", "good_a-2"]
    # A library is a source too: its motions keep their ids and tasks.
    again = build_library([tmp_path / "lib1"], tmp_path / "lib3")
    assert again.ids == ["good_a", "good_a-2"] and {m["task"] for m in again.motions} == {"pickup_table"}


def test_failed_build_keeps_previous_library(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    lib = tmp_path / "lib"
    build_library([corpus / "good_a"], lib)
    before = (lib / "index.json").read_bytes()

    with pytest.raises(GrailError, match="no motion passed"):  # everything rejected
        build_library([corpus / "far_hand"], lib)
    assert (lib / "index.json").read_bytes() == before

    import grail.library.build as build_module

    calls = {"n": 0}
    real_copy = build_module.shutil.copyfile

    def failing_copy(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:  # while copying the second motion
            raise OSError(28, "No space left on device")
        return real_copy(src, dst)

    monkeypatch.setattr(build_module.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError):
        build_library([corpus / "good_a", corpus / "good_b"], lib)
    monkeypatch.undo()
    assert (lib / "index.json").read_bytes() == before
    assert sorted(p.name for p in (lib / "motions").iterdir()) == ["good_a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # no temp or trash left

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(GrailError, match="not a motion library"):
        build_library([corpus / "good_a"], precious)
    assert (precious / "thesis.tex").read_text() == "keep me"
    with pytest.raises(GrailError) as err:
        build_library([tmp_path / "missing"], tmp_path / "lib9")
    assert err.value.file == str(tmp_path / "missing")


def test_library_index_load(corpus: Path, tmp_path: Path) -> None:
    built = build_library([corpus / "good_a"], tmp_path / "lib")
    loaded = LibraryIndex.load(tmp_path / "lib")
    assert loaded.to_dict() == built.to_dict()


# ----------------------------------------------------------------------------- CLI


def test_cli_build_convert_import(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(corpus / "good_a"), str(corpus / "far_hand"), str(corpus / "sliding"),
                                 "--out", str(tmp_path / "lib"), "--max", "self_collisions=none"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'lib'}: 1 accepted, 2 rejected"
    assert lines[1:] == [f"rejected {corpus / 'far_hand'}: hand_object_error_mean_mm 35 > 20",
                         f"rejected {corpus / 'sliding'}: foot_slide_max_cm_s 2.5 > 1"]

    result = runner.invoke(app, ["build", str(corpus), "--out", str(tmp_path / "lib2"), "--max", "bogus=1"])
    assert isinstance(result.exception, GrailError) and result.exception.field == "bogus"

    csv = tmp_path / "m.csv"
    result = runner.invoke(app, ["convert", str(corpus / "good_a"), "--to", "csv", "--out", str(csv)])
    assert result.exit_code == 0, result.output
    imported = tmp_path / "imported"
    result = runner.invoke(app, ["import-csv", str(csv), "--fps", "30", "--out", str(imported), "--task", "pickup_table"])
    assert result.exit_code == 0, result.output
    back = RobotMotion.load(imported)
    assert back.extra_meta["task"] == "pickup_table"
    assert_same_motion(back, RobotMotion.load(corpus / "good_a" / "robot"))

    result = runner.invoke(app, ["convert", str(corpus / "good_a"), "--to", "bvh", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0  # not one of the formats: a usage error
    result = runner.invoke(app, ["import-csv", str(csv), "--fps", "0", "--out", str(tmp_path / "y")])
    assert isinstance(result.exception, GrailError) and result.exception.field == "fps"
