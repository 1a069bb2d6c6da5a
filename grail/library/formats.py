"""Converters between GRAIL's ``RobotMotion`` and the motion formats of peer tools.

Each format has a writer and a reader, so a round trip is testable. Readers of formats that carry
only the root pose and joint angles rebuild every body pose by MuJoCo forward kinematics on the
robot model, so motions made elsewhere become full GRAIL motions.

Formats (facts about them, with where they come from; no code is taken from those projects):

- ``beyondmimic-npz``: the BeyondMimic / mjlab tracking npz. Keys ``fps, joint_pos, joint_vel,
  body_pos_w, body_quat_w (wxyz), body_lin_vel_w, body_ang_vel_w``, as written by
  ``mjlab/scripts/csv_to_npz.py`` (mjlab 1.6.0 wheel), which stores ``fps`` as a one-element list and
  all robot bodies in the entity's (MuJoCo) order. We also write ``joint_names`` and ``body_names``
  so the order travels with the file (Isaac Lab orders bodies breadth-first, MuJoCo depth-first).
- ``csv``: the BeyondMimic CSV: one row per frame, no header, comma-separated: root position (3),
  root quaternion **xyzw** (4), 29 joint positions in SDK order. ``csv_to_npz.py`` reads it with
  ``np.loadtxt(delimiter=",")`` and reorders columns 3:7 with ``[3, 0, 1, 2]`` to get wxyz. fps is
  not in the file.
- ``gmr``: the GMR (github.com/YanjieZe/GMR) robot-motion pickle: a dict ``fps, root_pos (T,3),
  root_rot (T,4), dof_pos (T,J), local_body_pos, link_body_list``. ``root_rot`` is **xyzw**, not
  wxyz as REFERENCE.md says: GMR's ``scripts/smplx_to_robot.py`` saves ``qpos[3:7][[1,2,3,0]]``
  ("save from wxyz to xyzw") and ``general_motion_retargeting/data_loader.py`` (load_robot_motion)
  reads ``root_rot[:, [3, 0, 1, 2]]`` ("from xyzw to wxyz"). GMR itself may store
  ``local_body_pos``/``link_body_list`` as None; we write body positions in the root frame and the
  body names.
- ``grail-release``: the GRAIL release pickle: ``dof (T,29)`` (SDK order), ``root_trans_offset (T,3)``,
  ``root_rot (T,4)`` **xyzw**, ``fps``. A dict holding a single named motion of those keys (the
  PHC/joblib habit of ``{name: motion}``) is read too.

Pickles are read with an unpickler that only builds plain Python values and numpy arrays, so
opening a pickle from elsewhere cannot run code.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import mujoco
import numpy as np

from grail.atomic import write_bytes_atomic
from grail.errors import GrailError
from grail.robot.g1 import G1, RobotSpec, robot_spec
from grail.robot.motion import RobotMotion
from grail.rotations import matrices_from_quats, wxyz_to_xyzw, xyzw_to_wxyz

NPZ_KEYS = ("fps", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w", "body_ang_vel_w")
GMR_KEYS = ("fps", "root_pos", "root_rot", "dof_pos")
RELEASE_KEYS = ("fps", "dof", "root_trans_offset", "root_rot")
FORMATS = ("beyondmimic-npz", "csv", "gmr", "grail-release")
SUFFIXES = {"beyondmimic-npz": ".npz", "csv": ".csv", "gmr": ".pkl", "grail-release": ".pkl"}
_PICKLE_PROTOCOL = 4  # readable by every Python 3 that peers use; protocol 5 adds nothing for us
_UNIT_TOLERANCE = 1e-2  # a root quaternion further than this from unit length is not a rotation


# ----------------------------------------------------------------------------- checks


def _spec(robot: str, where: Path | str | None) -> RobotSpec:
    """The robot spec, with an unknown name reported against the file being converted."""
    try:
        return robot_spec(robot)
    except GrailError as err:
        raise GrailError(err.reason, file=where, field="robot") from None


def _fps(value: Any, where: Path | str | None, field: str = "fps") -> float:
    """fps as a positive finite float; numpy scalars and one-element arrays (mjlab) are accepted."""
    try:
        arr = np.asarray(value, dtype=np.float64)
        if arr.size != 1:
            raise ValueError(f"{arr.size} values")
        fps = float(arr.reshape(-1)[0])
    except (TypeError, ValueError) as err:
        raise GrailError(f"not a single number ({err})", file=where, field=field) from None
    if not (math.isfinite(fps) and fps > 0):
        raise GrailError(f"fps must be positive (got {fps})", file=where, field=field)
    return fps


def _array(value: Any, where: Path | str | None, field: str, tail: tuple[int, ...],
           frames: int | None = None) -> np.ndarray:
    """A finite float64 array shaped (T, *tail); the message names the field and the shapes."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GrailError(f"not a numeric array ({err})", file=where, field=field) from None
    if arr.ndim != 1 + len(tail) or tuple(arr.shape[1:]) != tail or (frames is not None and arr.shape[0] != frames):
        want = ", ".join(str(n) for n in ("T" if frames is None else frames, *tail))
        raise GrailError(f"shape {arr.shape}, expected ({want})", file=where, field=field)
    if arr.shape[0] < 1:
        raise GrailError("no frames", file=where, field=field)
    if not np.all(np.isfinite(arr)):
        t = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise GrailError(f"contains NaN or infinite values (first at frame {t})", file=where, field=field)
    return arr


def _unit_quats(q: np.ndarray, where: Path | str | None, field: str) -> np.ndarray:
    """Normalise quaternions; ones far from unit length are bad data, not rounding."""
    norm = np.linalg.norm(q, axis=-1)
    bad = np.abs(norm - 1.0) > _UNIT_TOLERANCE
    if np.any(bad):
        first = tuple(np.argwhere(bad)[0])
        raise GrailError(f"not a unit quaternion at frame {first[0]} (norm {float(norm[first]):.4g})",
                         file=where, field=field)
    return q / norm[..., None]


def _names(value: Any, where: Path | str | None, field: str) -> list[str]:
    try:
        names = [str(n) for n in np.asarray(value).reshape(-1).tolist()]
    except (TypeError, ValueError) as err:
        raise GrailError(f"not a list of names ({err})", file=where, field=field) from None
    if len(set(names)) != len(names):
        raise GrailError("names are not unique", file=where, field=field)
    return names


def _joint_order(names: list[str], spec: RobotSpec, where: Path | str | None, field: str = "joint_names") -> np.ndarray:
    """Index array taking columns named `names` to the robot's SDK order; every joint must be there."""
    missing = [j for j in spec.joint_names if j not in names]
    unknown = [j for j in names if j not in spec.joint_names]
    if missing or unknown:
        detail = "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                       f"unknown {', '.join(unknown)}" if unknown else "") if p)
        raise GrailError(f"joints do not match robot {spec.name} ({detail})", file=where, field=field)
    return np.array([names.index(j) for j in spec.joint_names])


def _sdk_joint_pos(motion: RobotMotion, spec: RobotSpec) -> np.ndarray:
    """The motion's joint positions in the robot's SDK order (writers of flat formats need it)."""
    return motion.joint_pos[:, _joint_order(list(motion.joint_names), spec, motion.source or None)]


def _root_pose(motion: RobotMotion, spec: RobotSpec) -> tuple[np.ndarray, np.ndarray]:
    """Root (free-joint body) position and wxyz quaternion, found by name, never by position."""
    if spec.root_body not in motion.body_names:
        raise GrailError(f"the motion has no root body {spec.root_body!r}", file=motion.source or None, field="body_names")
    i = list(motion.body_names).index(spec.root_body)
    return motion.body_pos_w[:, i], motion.body_quat_w[:, i]


# ----------------------------------------------------------------------------- forward kinematics


def forward_kinematics(root_pos: np.ndarray, root_quat_wxyz: np.ndarray, joint_pos: np.ndarray,
                       robot: str = G1.name) -> tuple[list[str], np.ndarray, np.ndarray]:
    """World poses of every robot body, frame by frame, with ``mj_kinematics`` on the robot model.

    Returns (body names in MuJoCo model order, positions (T,B,3), quaternions wxyz (T,B,4)).
    `joint_pos` is (T, dof) in the robot's SDK order. Formats that store only the root and the
    joints (CSV, GMR, GRAIL release) need this to become full motions.
    """
    from grail.robot.model import joint_qpos_indices, robot_body_names, robot_model

    spec = robot_spec(robot)
    model = robot_model(spec.name)
    qadr = joint_qpos_indices(model, spec)
    root_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.root_body)
    jnt = model.body_jntadr[root_id] if root_id >= 0 else -1
    if jnt < 0 or model.jnt_type[jnt] != mujoco.mjtJoint.mjJNT_FREE:
        raise GrailError(f"the model's root body {spec.root_body!r} has no free joint", field="robot")
    radr = model.jnt_qposadr[jnt]
    data = mujoco.MjData(model)
    T = joint_pos.shape[0]
    pos = np.empty((T, model.nbody - 1, 3))
    quat = np.empty((T, model.nbody - 1, 4))
    for t in range(T):
        data.qpos[:] = model.qpos0
        data.qpos[radr:radr + 3] = root_pos[t]
        data.qpos[radr + 3:radr + 7] = root_quat_wxyz[t]
        data.qpos[qadr] = joint_pos[t]
        mujoco.mj_kinematics(model, data)
        pos[t] = data.xpos[1:]
        quat[t] = data.xquat[1:]
    return robot_body_names(model), pos, quat


def motion_from_root_and_joints(fps: float, root_pos: np.ndarray, root_quat_wxyz: np.ndarray, joint_pos: np.ndarray,
                                *, robot: str = G1.name, source: str = "", imported_format: str = "") -> RobotMotion:
    """A full RobotMotion (bodies by FK, velocities by finite differences, no object, no contacts)
    from a root trajectory and SDK-ordered joint angles."""
    spec = robot_spec(robot)
    body_names, body_pos, body_quat = forward_kinematics(root_pos, root_quat_wxyz, joint_pos, spec.name)
    T = joint_pos.shape[0]
    extra = {"imported_format": imported_format} if imported_format else {}
    return RobotMotion(fps=float(fps), joint_names=list(spec.joint_names), body_names=body_names,
                       joint_pos=np.asarray(joint_pos, dtype=np.float64), body_pos_w=body_pos, body_quat_w=body_quat,
                       object_pos_w=np.zeros((T, 3)), object_quat_w=np.tile([1.0, 0.0, 0.0, 0.0], (T, 1)),
                       contact=np.zeros((T, 0), dtype=bool), contact_names=[], robot=spec.name,
                       object_name=None, source=source, extra_meta=extra)


def _from_flat(path: Path, fps: float, root_pos: Any, root_quat_wxyz: Any, joint_pos: Any, spec: RobotSpec,
               fields: tuple[str, str, str], fmt: str) -> RobotMotion:
    """Check the three arrays of a root+joints format (fields name them in the file) and run FK."""
    jp = _array(joint_pos, path, fields[2], (spec.dof,))
    T = jp.shape[0]
    rp = _array(root_pos, path, fields[0], (3,), T)
    rq = _unit_quats(_array(root_quat_wxyz, path, fields[1], (4,), T), path, fields[1])
    return motion_from_root_and_joints(fps, rp, rq, jp, robot=spec.name, source=str(path), imported_format=fmt)


# ----------------------------------------------------------------------------- BeyondMimic / mjlab npz


def write_beyondmimic_npz(motion: RobotMotion, path: Path, robot: str | None = None) -> None:
    """Write the tracking npz (float32, like mjlab), joints in SDK order, with the name arrays."""
    spec = _spec(robot or motion.robot, path)
    order = _joint_order(list(motion.joint_names), spec, path)
    arrays = {
        "fps": np.array([motion.fps], dtype=np.float64),  # mjlab's csv_to_npz writes [output_fps]
        "joint_pos": motion.joint_pos[:, order].astype(np.float32),
        "joint_vel": motion.joint_vel[:, order].astype(np.float32),
        "body_pos_w": motion.body_pos_w.astype(np.float32),
        "body_quat_w": motion.body_quat_w.astype(np.float32),
        "body_lin_vel_w": motion.body_lin_vel_w.astype(np.float32),
        "body_ang_vel_w": motion.body_ang_vel_w.astype(np.float32),
        "joint_names": np.array(spec.joint_names, dtype=np.str_),
        "body_names": np.array(motion.body_names, dtype=np.str_),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write(path, buffer.getvalue())


def read_beyondmimic_npz(path: Path, robot: str = G1.name) -> RobotMotion:
    """Read a BeyondMimic / mjlab tracking npz.

    ``joint_names`` and ``body_names`` arrays are used when present. A file without them (as
    mjlab's own ``csv_to_npz.py`` writes) is assumed to follow the robot model's order: joints in
    SDK order (which is mjlab's G1 order) and bodies in MuJoCo model order, world excluded; the
    counts must then match the model. Joints come back in SDK order; bodies in the file's order.
    """
    path = Path(path)
    spec = _spec(robot, path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise GrailError("missing key", file=path, field=missing[0])
            raw = {k: np.array(z[k]) for k in (*NPZ_KEYS, "joint_names", "body_names") if k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise GrailError(f"cannot read as npz ({err})", file=path) from None
    fps = _fps(raw["fps"], path)
    if raw["joint_pos"].ndim != 2:
        raise GrailError(f"shape {raw['joint_pos'].shape}, expected (T, joints)", file=path, field="joint_pos")
    joint_pos = _array(raw["joint_pos"], path, "joint_pos", raw["joint_pos"].shape[1:])
    T, J = joint_pos.shape
    if "joint_names" in raw:
        joint_names = _names(raw["joint_names"], path, "joint_names")
        if len(joint_names) != J:
            raise GrailError(f"{len(joint_names)} names for {J} joint columns", file=path, field="joint_names")
    elif J != spec.dof:
        raise GrailError(f"{J} joints, robot {spec.name} has {spec.dof} (and the file has no joint_names)",
                         file=path, field="joint_pos")
    else:
        joint_names = list(spec.joint_names)
    order = _joint_order(joint_names, spec, path)
    body_pos = raw["body_pos_w"]
    B = body_pos.shape[1] if body_pos.ndim == 3 else -1
    if "body_names" in raw:
        body_names = _names(raw["body_names"], path, "body_names")
    else:
        from grail.robot.model import robot_body_names, robot_model

        body_names = robot_body_names(robot_model(spec.name))
        if B != len(body_names):
            raise GrailError(f"{B} bodies, the {spec.name} model has {len(body_names)} (and the file has no body_names)",
                             file=path, field="body_pos_w")
    B = len(body_names)
    body_quat = _unit_quats(_array(raw["body_quat_w"], path, "body_quat_w", (B, 4), T), path, "body_quat_w")
    return RobotMotion(
        fps=fps, joint_names=list(spec.joint_names), body_names=body_names, joint_pos=joint_pos[:, order],
        joint_vel=_array(raw["joint_vel"], path, "joint_vel", (J,), T)[:, order],
        body_pos_w=_array(body_pos, path, "body_pos_w", (B, 3), T), body_quat_w=body_quat,
        body_lin_vel_w=_array(raw["body_lin_vel_w"], path, "body_lin_vel_w", (B, 3), T),
        body_ang_vel_w=_array(raw["body_ang_vel_w"], path, "body_ang_vel_w", (B, 3), T),
        object_pos_w=np.zeros((T, 3)), object_quat_w=np.tile([1.0, 0.0, 0.0, 0.0], (T, 1)),
        contact=np.zeros((T, 0), dtype=bool), contact_names=[], robot=spec.name, source=str(path),
        extra_meta={"imported_format": "beyondmimic-npz"})


# ----------------------------------------------------------------------------- BeyondMimic CSV


def write_beyondmimic_csv(motion: RobotMotion, path: Path, robot: str | None = None) -> None:
    """One row per frame: root xyz, root quaternion xyzw, joints in SDK order; no header, no fps."""
    spec = _spec(robot or motion.robot, path)
    root_pos, root_quat = _root_pose(motion, spec)
    rows = np.concatenate([root_pos, wxyz_to_xyzw(root_quat), _sdk_joint_pos(motion, spec)], axis=1)
    buffer = io.BytesIO()
    np.savetxt(buffer, rows, fmt="%.9g", delimiter=",")
    _write(path, buffer.getvalue())


def read_beyondmimic_csv(path: Path, fps: float, robot: str = G1.name) -> RobotMotion:
    """Read a BeyondMimic CSV (fps is not in the file, so the caller gives it) and rebuild every
    body pose by forward kinematics on the robot model."""
    path = Path(path)
    spec = _spec(robot, path)
    fps = _fps(fps, path)
    columns = 7 + spec.dof
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise GrailError(f"cannot read ({err})", file=path) from None
    rows: list[list[float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != columns:
            raise GrailError(f"row {number} has {len(cells)} columns, expected {columns} "
                             f"(root xyz, root quaternion xyzw, {spec.dof} joints)", file=path, field="columns")
        try:
            values = [float(c) for c in cells]
        except ValueError:
            bad = next(i for i, c in enumerate(cells) if not _is_float(c))
            raise GrailError(f"row {number}: {cells[bad].strip()!r} is not a number (the file has no header)",
                             file=path, field=_csv_column(bad, spec)) from None
        finite = [math.isfinite(v) for v in values]
        if not all(finite):
            raise GrailError(f"row {number}: NaN or infinite value", file=path, field=_csv_column(finite.index(False), spec))
        rows.append(values)
    if not rows:
        raise GrailError("no frames", file=path, field="rows")
    data = np.asarray(rows)
    return _from_flat(path, fps, data[:, 0:3], xyzw_to_wxyz(data[:, 3:7]), data[:, 7:], spec,
                      ("root_pos", "root_quat_xyzw", "joint_pos"), "beyondmimic-csv")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_column(index: int, spec: RobotSpec) -> str:
    """Name of CSV column `index` (0-based), for error messages."""
    if index < 3:
        return f"root_pos.{'xyz'[index]}"
    if index < 7:
        return f"root_quat_xyzw.{'xyzw'[index - 3]}"
    return spec.joint_names[index - 7]


# ----------------------------------------------------------------------------- GMR pickle


def write_gmr_pickle(motion: RobotMotion, path: Path, robot: str | None = None) -> None:
    """GMR's pickle: root_rot xyzw (as GMR writes it), dof_pos in SDK order, body positions in the
    root frame (what GMR's forward kinematics with the root at the origin gives) and their names."""
    spec = _spec(robot or motion.robot, path)
    root_pos, root_quat = _root_pose(motion, spec)
    R = matrices_from_quats(root_quat)  # (T,3,3) root-to-world
    local = np.einsum("tji,tbj->tbi", R, motion.body_pos_w - root_pos[:, None, :])  # R^T (p - p_root)
    data = {"fps": float(motion.fps), "root_pos": root_pos.astype(np.float64),
            "root_rot": wxyz_to_xyzw(root_quat).astype(np.float64),
            "dof_pos": _sdk_joint_pos(motion, spec).astype(np.float64),
            "local_body_pos": local.astype(np.float64), "link_body_list": list(motion.body_names)}
    _write(path, pickle.dumps(data, protocol=_PICKLE_PROTOCOL))


def read_gmr_pickle(path: Path, robot: str = G1.name) -> RobotMotion:
    """Read a GMR pickle (root_rot xyzw); bodies are rebuilt by FK. ``local_body_pos`` and
    ``link_body_list`` are optional (GMR may store None) and, when present, only checked."""
    path = Path(path)
    spec = _spec(robot, path)
    data = _read_pickle_dict(path)
    _require(data, GMR_KEYS, path)
    fps = _fps(data["fps"], path)
    motion = _from_flat(path, fps, data["root_pos"], xyzw_to_wxyz(_array(data["root_rot"], path, "root_rot", (4,))),
                        data["dof_pos"], spec, ("root_pos", "root_rot", "dof_pos"), "gmr")
    local = data.get("local_body_pos")
    if local is not None:
        names = data.get("link_body_list")
        shape = np.shape(local)
        bodies = len(_names(names, path, "link_body_list")) if names is not None else (shape[1] if len(shape) == 3 else 0)
        _array(local, path, "local_body_pos", (bodies, 3), motion.frames)
    return motion


# ----------------------------------------------------------------------------- GRAIL release pickle


def write_grail_release_pickle(motion: RobotMotion, path: Path, robot: str | None = None) -> None:
    """The GRAIL release pickle: dof (SDK order), root_trans_offset, root_rot xyzw, fps."""
    spec = _spec(robot or motion.robot, path)
    root_pos, root_quat = _root_pose(motion, spec)
    data = {"dof": _sdk_joint_pos(motion, spec).astype(np.float64), "root_trans_offset": root_pos.astype(np.float64),
            "root_rot": wxyz_to_xyzw(root_quat).astype(np.float64), "fps": float(motion.fps)}
    _write(path, pickle.dumps(data, protocol=_PICKLE_PROTOCOL))


def read_grail_release_pickle(path: Path, robot: str = G1.name) -> RobotMotion:
    """Read a GRAIL release pickle (root_rot xyzw); bodies are rebuilt by FK."""
    path = Path(path)
    spec = _spec(robot, path)
    data = _single_motion(_read_pickle_dict(path), path)
    _require(data, RELEASE_KEYS, path)
    fps = _fps(data["fps"], path)
    return _from_flat(path, fps, data["root_trans_offset"],
                      xyzw_to_wxyz(_array(data["root_rot"], path, "root_rot", (4,))), data["dof"], spec,
                      ("root_trans_offset", "root_rot", "dof"), "grail-release")


# ----------------------------------------------------------------------------- pickles, files


def _single_motion(data: dict, path: Path) -> dict:
    """Unwrap ``{name: motion}`` (one entry); a dict of several named motions is refused."""
    if any(k in data for k in RELEASE_KEYS) or not data or not all(isinstance(v, dict) for v in data.values()):
        return data
    if len(data) > 1:
        raise GrailError(f"holds {len(data)} named motions ({', '.join(map(str, list(data)[:3]))}, ...); "
                         "give one motion per file", file=path)
    return next(iter(data.values()))


class _ValuesOnlyUnpickler(pickle.Unpickler):
    """Builds numpy arrays/scalars and plain Python values only: a pickle from elsewhere cannot
    run code. These are the globals numpy 1.x and 2.x pickles of arrays refer to."""

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"), ("collections", "OrderedDict"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        if module.startswith("numpy.dtypes") and name.endswith("DType"):  # numpy 2 dtype classes
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and plain values are read)")


def _read_pickle_dict(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = _ValuesOnlyUnpickler(handle).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as err:
        raise GrailError(f"cannot read as pickle ({err})", file=path) from None
    if not isinstance(data, dict):
        raise GrailError(f"expected a dict, found {type(data).__name__}", file=path)
    return data


def _require(data: dict, keys: tuple[str, ...], path: Path) -> None:
    for key in keys:
        if key not in data or data[key] is None:
            raise GrailError("missing key", file=path, field=key)


def _write(path: Path, payload: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, payload)


# ----------------------------------------------------------------------------- by name


WRITERS: dict[str, Callable[..., None]] = {
    "beyondmimic-npz": write_beyondmimic_npz, "csv": write_beyondmimic_csv,
    "gmr": write_gmr_pickle, "grail-release": write_grail_release_pickle,
}


def write_motion(motion: RobotMotion, fmt: str, path: Path) -> None:
    """Write `motion` in the named format (one of FORMATS)."""
    if fmt not in WRITERS:
        raise GrailError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", field="to")
    WRITERS[fmt](motion, Path(path))


def read_motion(path: Path, fmt: str, fps: float | None = None, robot: str = G1.name) -> RobotMotion:
    """Read a file of the named format; `fps` is required for CSV and ignored otherwise."""
    path = Path(path)
    if fmt == "csv":
        if fps is None:
            raise GrailError("a CSV carries no fps: give it", file=path, field="fps")
        return read_beyondmimic_csv(path, fps, robot)
    readers = {"beyondmimic-npz": read_beyondmimic_npz, "gmr": read_gmr_pickle, "grail-release": read_grail_release_pickle}
    if fmt not in readers:
        raise GrailError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})", file=path, field="format")
    return readers[fmt](path, robot)
