"""``robot/motion.npz`` + ``robot/meta.json``: a robot motion, as ARCHITECTURE.md specifies.

The npz keys are a superset of the BeyondMimic / mjlab tracking format (``fps, joint_pos,
joint_vel, body_pos_w, body_quat_w, body_lin_vel_w, body_ang_vel_w``) plus the object pose and
contact flags. Joint order is the Unitree SDK motor order, body order MuJoCo's model order; both
are written in meta.json and never assumed by readers.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grail.atomic import write_bytes_atomic, write_text_atomic
from grail.checks import check_arrays, read_json_object
from grail.errors import GrailError

MOTION_KEYS = ("fps", "joint_pos", "joint_vel", "body_pos_w", "body_quat_w", "body_lin_vel_w",
               "body_ang_vel_w", "object_pos_w", "object_quat_w", "contact")


@dataclass
class RobotMotion:
    """A robot motion with the names that make its arrays readable."""

    fps: float
    joint_names: list[str]
    body_names: list[str]
    joint_pos: np.ndarray          # (T, J)
    body_pos_w: np.ndarray         # (T, B, 3)
    body_quat_w: np.ndarray        # (T, B, 4) wxyz
    object_pos_w: np.ndarray       # (T, 3); zeros when there is no object
    object_quat_w: np.ndarray      # (T, 4); identity when there is no object
    contact: np.ndarray            # (T, C) bool
    contact_names: list[str]
    robot: str = "g1_29dof_rev_1_0"
    object_name: str | None = None
    source: str = ""
    joint_vel: np.ndarray | None = None
    body_lin_vel_w: np.ndarray | None = None
    body_ang_vel_w: np.ndarray | None = None
    extra_meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.joint_vel is None:
            self.joint_vel = finite_difference(self.joint_pos, self.fps)
        if self.body_lin_vel_w is None:
            self.body_lin_vel_w = finite_difference(self.body_pos_w, self.fps)
        if self.body_ang_vel_w is None:
            self.body_ang_vel_w = angular_velocity(self.body_quat_w, self.fps)

    @property
    def frames(self) -> int:
        return int(self.joint_pos.shape[0])

    @property
    def root_pos(self) -> np.ndarray:
        return self.body_pos_w[:, 0]

    @property
    def root_quat(self) -> np.ndarray:
        return self.body_quat_w[:, 0]

    def meta(self) -> dict:
        return {"robot": self.robot, "joint_names": list(self.joint_names), "body_names": list(self.body_names),
                "contact_names": list(self.contact_names), "object": self.object_name, "quat_order": "wxyz",
                "fps": self.fps, "frames": self.frames, "source": self.source, **self.extra_meta}

    def arrays(self) -> dict[str, np.ndarray]:
        # fps as a one-element array, as mjlab's / BeyondMimic's csv_to_npz writes it.
        return {"fps": np.array([self.fps]), "joint_pos": self.joint_pos.astype(np.float32),
                "joint_vel": self.joint_vel.astype(np.float32), "body_pos_w": self.body_pos_w.astype(np.float32),
                "body_quat_w": self.body_quat_w.astype(np.float32),
                "body_lin_vel_w": self.body_lin_vel_w.astype(np.float32),
                "body_ang_vel_w": self.body_ang_vel_w.astype(np.float32),
                "object_pos_w": self.object_pos_w.astype(np.float32),
                "object_quat_w": self.object_quat_w.astype(np.float32), "contact": self.contact.astype(bool)}

    def save(self, directory: Path) -> None:
        """Write motion.npz and meta.json into `directory` (each file atomically)."""
        self.validate(directory)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.arrays())
        write_bytes_atomic(Path(directory) / "motion.npz", buffer.getvalue())
        write_text_atomic(Path(directory) / "meta.json", json.dumps(self.meta(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "RobotMotion":
        """Read motion.npz + meta.json; bad or inconsistent files raise GrailError naming the field."""
        directory = Path(directory)
        meta_path, npz_path = directory / "meta.json", directory / "motion.npz"
        meta = read_json_object(meta_path, ("joint_names", "body_names", "contact_names", "fps", "quat_order"))
        if meta["quat_order"] != "wxyz":
            raise GrailError(f"quat_order {meta['quat_order']!r}, expected 'wxyz'", file=meta_path, field="quat_order")
        try:
            with np.load(npz_path, allow_pickle=False) as z:
                missing = [k for k in MOTION_KEYS if k not in z.files]
                if missing:
                    raise GrailError("missing key", file=npz_path, field=missing[0])
                a = {k: np.array(z[k]) for k in MOTION_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:  # a truncated or damaged npz
            raise GrailError(f"cannot read ({err})", file=npz_path) from None
        if a["fps"].size != 1:
            raise GrailError(f"shape {a['fps'].shape}, expected one value", file=npz_path, field="fps")
        fps = float(a["fps"].reshape(-1)[0])
        if not np.isclose(fps, float(meta["fps"])):
            raise GrailError(f"fps {fps:g} in motion.npz but {meta['fps']} in meta.json", file=npz_path, field="fps")
        known = {"robot", "joint_names", "body_names", "contact_names", "object", "quat_order", "fps", "frames", "source"}
        motion = cls(fps=fps, joint_names=list(meta["joint_names"]), body_names=list(meta["body_names"]),
                     joint_pos=a["joint_pos"].astype(np.float64), body_pos_w=a["body_pos_w"].astype(np.float64),
                     body_quat_w=a["body_quat_w"].astype(np.float64), object_pos_w=a["object_pos_w"].astype(np.float64),
                     object_quat_w=a["object_quat_w"].astype(np.float64), contact=a["contact"].astype(bool),
                     contact_names=list(meta["contact_names"]), robot=str(meta.get("robot", "")),
                     object_name=meta.get("object"), source=str(meta.get("source", "")),
                     joint_vel=a["joint_vel"].astype(np.float64), body_lin_vel_w=a["body_lin_vel_w"].astype(np.float64),
                     body_ang_vel_w=a["body_ang_vel_w"].astype(np.float64),
                     extra_meta={k: v for k, v in meta.items() if k not in known})
        motion.validate(npz_path)
        return motion

    def validate(self, where: Path | str | None = None) -> None:
        """Shapes agree with the names and every number is finite."""
        T, J, B, C = self.frames, len(self.joint_names), len(self.body_names), len(self.contact_names)
        if T < 1:
            raise GrailError("no frames", file=where, field="joint_pos")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise GrailError(f"fps must be positive (got {self.fps})", file=where, field="fps")
        shapes = {"joint_pos": (T, J), "joint_vel": (T, J), "body_pos_w": (T, B, 3), "body_quat_w": (T, B, 4),
                  "body_lin_vel_w": (T, B, 3), "body_ang_vel_w": (T, B, 3), "object_pos_w": (T, 3),
                  "object_quat_w": (T, 4), "contact": (T, C)}
        check_arrays({name: getattr(self, name) for name in shapes}, shapes, where)


def finite_difference(x: np.ndarray, fps: float) -> np.ndarray:
    """Time derivative along axis 0 (central inside, one-sided at the ends; zero for one frame)."""
    if x.shape[0] < 2:
        return np.zeros_like(x, dtype=np.float64)
    return np.gradient(np.asarray(x, dtype=np.float64), 1.0 / fps, axis=0)


def angular_velocity(quat_wxyz: np.ndarray, fps: float) -> np.ndarray:
    """World-frame angular velocity (rad/s) of unit quaternions (T, ..., 4), by central differences."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    if q.shape[0] < 2:
        return np.zeros(q.shape[:-1] + (3,))
    q = q.copy()
    for t in range(1, q.shape[0]):  # one hemisphere, so differences are small
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1
    dq = np.gradient(q, 1.0 / fps, axis=0)
    # omega_world = 2 * dq * conj(q), vector part.
    w0, v0 = dq[..., :1], dq[..., 1:]
    w1, v1 = q[..., :1], -q[..., 1:]
    vec = w0 * v1 + w1 * v0 + np.cross(v0, v1)
    return 2.0 * vec
