"""The ``oracle`` human estimator: the ground truth projected through the scene camera, with
configurable pixel noise, dropout and outliers. For benchmarks and tests only: its observations
are marked ``oracle`` and everything built from them says so."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grail.errors import GrailError
from grail.recon.keypoints import KEYPOINTS
from grail.recon.observations import Observations
from grail.scene.camera import PinholeCamera


@dataclass
class OracleOptions:
    noise_px: float = 3.0      # Gaussian pixel noise (standard deviation)
    dropout: float = 0.05      # share of keypoints reported unseen (confidence 0)
    outliers: float = 0.0      # share of keypoints moved anywhere in the image (confidence kept)
    seed: int = 0


def oracle_observations(joint_names: list[str], joint_pos: np.ndarray, fps: float, camera: PinholeCamera,
                        options: OracleOptions | None = None) -> Observations:
    """Observations of KEYPOINTS from world joint positions (T,N,3)."""
    options = options or OracleOptions()
    missing = [k for k in KEYPOINTS if k not in joint_names]
    if missing:
        raise GrailError(f"the ground truth has no joint {missing[0]!r}", field="joint_names")
    rng = np.random.default_rng(options.seed)
    pts = joint_pos[:, [joint_names.index(k) for k in KEYPOINTS]]
    T, K = pts.shape[:2]
    uv, z = camera.project(pts.reshape(-1, 3))
    uv = uv.reshape(T, K, 2) + rng.normal(0.0, options.noise_px, (T, K, 2))
    conf = np.where(z.reshape(T, K) > 0, 0.9, 0.0)
    wild = rng.random((T, K)) < options.outliers
    uv[wild] = rng.uniform([0, 0], [camera.width, camera.height], (int(wild.sum()), 2))
    conf[rng.random((T, K)) < options.dropout] = 0.0
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < camera.width) & (uv[..., 1] >= 0) & (uv[..., 1] < camera.height)
    conf[~inside] = 0.0
    return Observations(fps=fps, width=camera.width, height=camera.height,
                        estimator=f"oracle(noise_px={options.noise_px},dropout={options.dropout},"
                                  f"outliers={options.outliers},seed={options.seed})",
                        oracle=True, keypoint_names=list(KEYPOINTS), keypoints=uv, keypoint_conf=conf)
