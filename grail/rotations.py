"""Rotation conversions in one place. GRAIL stores quaternions as wxyz (MuJoCo); the xyzw
formats of peer tools (scipy, BeyondMimic CSV, GMR, the GRAIL release) convert here only."""

from __future__ import annotations

import math

import mujoco
import numpy as np


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, float)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, float)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit wxyz quaternion (w >= 0)."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=float).reshape(9))
    return -q if q[0] < 0 else q


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """wxyz quaternion (normalised here) -> 3x3 rotation."""
    q = np.asarray(q, float)
    R = np.zeros(9)
    mujoco.mju_quat2Mat(R, q / np.linalg.norm(q))
    return R.reshape(3, 3)


def yaw_quat(yaw_rad: float) -> np.ndarray:
    """wxyz quaternion of a rotation about +z."""
    return np.array([math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)])


def quats_from_matrices(R: np.ndarray) -> np.ndarray:
    """(...,3,3) rotations -> (...,4) unit wxyz quaternions with w >= 0 (batched)."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, float)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()  # xyzw
    q = np.concatenate([q[:, 3:], q[:, :3]], 1)
    q[q[:, 0] < 0] *= -1
    return q.reshape(R.shape[:-2] + (4,))


def matrices_from_quats(q: np.ndarray) -> np.ndarray:
    """(...,4) wxyz quaternions (normalised here) -> (...,3,3) rotations (batched)."""
    from scipy.spatial.transform import Rotation

    q = np.asarray(q, float)
    flat = q.reshape(-1, 4)
    R = Rotation.from_quat(np.concatenate([flat[:, 1:], flat[:, :1]], 1)).as_matrix()
    return R.reshape(q.shape[:-1] + (3, 3))


def homogeneous(R: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(...,3,3) rotations and (...,3) positions -> (...,4,4) transforms (batched)."""
    R, p = np.asarray(R, float), np.asarray(p, float)
    T = np.zeros(np.broadcast_shapes(R.shape[:-2], p.shape[:-1]) + (4, 4))
    T[..., :3, :3], T[..., :3, 3], T[..., 3, 3] = R, p, 1.0
    return T


def transforms(pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(...,3) positions and (...,4) wxyz quaternions -> (...,4,4) transforms (batched)."""
    return homogeneous(matrices_from_quats(quat), pos)
