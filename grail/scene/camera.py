"""Pinhole camera in the OpenCV convention, its MuJoCo equivalent, and constrained sampling.

On disk (camera.json) cameras are OpenCV: x right, y down, z forward, `T_world_cam` maps camera
to world. MuJoCo cameras look down their -z axis with y up, so the rotation differs by
diag(1, -1, -1). Pixel centres sit at integer coordinates, so the principal point of MuJoCo's
symmetric frustum is ((W-1)/2, (H-1)/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from grail.errors import GrailError
from grail.rotations import quat_from_matrix

CV_FROM_MJ = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class PinholeCamera:
    width: int
    height: int
    fov_deg: float  # vertical
    T_world_cam: np.ndarray  # (4, 4), OpenCV camera to world

    @property
    def K(self) -> np.ndarray:
        f = (self.height / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)
        return np.array([[f, 0.0, (self.width - 1) / 2.0], [0.0, f, (self.height - 1) / 2.0], [0.0, 0.0, 1.0]])

    @property
    def position(self) -> np.ndarray:
        return self.T_world_cam[:3, 3].copy()

    @property
    def R_world_cam(self) -> np.ndarray:
        return self.T_world_cam[:3, :3].copy()

    @classmethod
    def look_at(cls, position, target, fov_deg: float, width: int, height: int) -> "PinholeCamera":
        """Camera at `position` looking at `target`, image x kept horizontal (no roll)."""
        position = np.asarray(position, float)
        forward = np.asarray(target, float) - position
        norm = np.linalg.norm(forward)
        if norm < 1e-9:
            raise ValueError("camera position equals its target")
        forward /= norm
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-6:
            raise ValueError("camera looks straight up or down: its roll is undefined")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        T = np.eye(4)
        T[:3, :3] = np.stack([right, down, forward], axis=1)
        T[:3, 3] = position
        return cls(width=width, height=height, fov_deg=float(fov_deg), T_world_cam=T)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        R, t = self.T_world_cam[:3, :3], self.T_world_cam[:3, 3]
        return (np.asarray(points, float) - t) @ R

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,3) -> pixel coordinates (N,2) and camera-z depth (N,)."""
        pc = self.world_to_camera(points)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (pc[:, :2] / z[:, None]) @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, z

    def pixel_rays(self, uv: np.ndarray) -> np.ndarray:
        """Unit world-frame ray directions through pixel coordinates (N,2)."""
        uv1 = np.concatenate([np.asarray(uv, float), np.ones((len(uv), 1))], axis=1)
        d_cam = uv1 @ np.linalg.inv(self.K).T
        d = d_cam @ self.R_world_cam.T
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def mujoco_quat(self) -> np.ndarray:
        """wxyz orientation of the equivalent MuJoCo camera frame."""
        return quat_from_matrix(self.R_world_cam @ CV_FROM_MJ)

    def mujoco_xyaxes(self) -> str:
        R = self.R_world_cam
        x_axis, y_axis = R[:, 0], -R[:, 1]
        return " ".join(f"{v:.9f}" for v in (*x_axis, *y_axis))

    def to_json(self) -> dict:
        return {
            "convention": "opencv",
            "width": self.width,
            "height": self.height,
            "fov_deg": round(self.fov_deg, 9),
            "K": np.round(self.K, 9).tolist(),
            "T_world_cam": np.round(self.T_world_cam, 9).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict) -> "PinholeCamera":
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            fov_deg=float(data["fov_deg"]),
            T_world_cam=np.asarray(data["T_world_cam"], float),
        )


@dataclass(frozen=True)
class CameraConstraints:
    fov_deg: tuple[float, float]
    distance: tuple[float, float]
    height: tuple[float, float]
    azimuth_deg: tuple[float, float]
    look_at_jitter: float
    margin_px: float
    max_tries: int


@dataclass(frozen=True)
class CameraSample:
    camera: PinholeCamera
    target: np.ndarray  # the point it looks at
    distance: float
    tries: int


def in_frame(camera: PinholeCamera, points: np.ndarray, margin_px: float) -> bool:
    """All points in front of the camera and inside the image with a margin."""
    uv, z = camera.project(points)
    if np.any(z <= 0.05):
        return False
    inside_u = (uv[:, 0] >= margin_px) & (uv[:, 0] <= camera.width - 1 - margin_px)
    inside_v = (uv[:, 1] >= margin_px) & (uv[:, 1] <= camera.height - 1 - margin_px)
    return bool(np.all(inside_u & inside_v))


def sample_camera(
    constraints: CameraConstraints,
    rng: np.random.Generator,
    width: int,
    height: int,
    look_at: np.ndarray,
    must_see: dict[str, np.ndarray],
    accept: Callable[[PinholeCamera], str | None] | None = None,
) -> CameraSample:
    """Draw cameras until one sees every point set fully in frame and `accept` (occlusion and
    the like) returns None; raise with the tally of reasons when none qualifies."""
    rejected: dict[str, int] = {}

    def uniform(lo_hi: tuple[float, float]) -> float:
        return float(rng.uniform(*lo_hi))

    for attempt in range(1, constraints.max_tries + 1):
        fov = uniform(constraints.fov_deg)
        dist = uniform(constraints.distance)
        cam_z = uniform(constraints.height)
        az = math.radians(uniform(constraints.azimuth_deg))
        target = np.asarray(look_at, float) + rng.uniform(-1, 1, 3) * constraints.look_at_jitter
        dz = cam_z - target[2]
        horizontal = dist**2 - dz**2
        if horizontal <= 0.01:
            rejected["height above distance"] = rejected.get("height above distance", 0) + 1
            continue
        r = math.sqrt(horizontal)
        position = target + np.array([r * math.cos(az), r * math.sin(az), dz])
        camera = PinholeCamera.look_at(position, target, fov, width, height)
        reason = next((f"{name} out of frame" for name, pts in must_see.items() if not in_frame(camera, pts, constraints.margin_px)), None)
        if reason is None and accept is not None:
            reason = accept(camera)
        if reason is None:
            return CameraSample(camera, target, dist, attempt)
        rejected[reason] = rejected.get(reason, 0) + 1
    tally = ", ".join(f"{k} ({v})" for k, v in sorted(rejected.items(), key=lambda kv: -kv[1]))
    raise GrailError(f"no camera met the constraints in {constraints.max_tries} tries: {tally}", field="camera")
