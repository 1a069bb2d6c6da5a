"""``recon/observations.npz``: what perception saw, kept beside the reconstruction.

Keys: ``fps``, ``width``, ``height``, ``estimator`` (name), ``oracle`` (True when the keypoints are
projected ground truth, never a real detector), ``keypoint_names (K,)``, ``keypoints (T,K,2)``
pixel coordinates (x right, y down), ``keypoint_conf (T,K)`` in [0, 1] (0: not seen).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grail.atomic import write_bytes_atomic
from grail.errors import GrailError


@dataclass
class Observations:
    fps: float
    width: int
    height: int
    estimator: str
    oracle: bool
    keypoint_names: list[str]
    keypoints: np.ndarray      # (T,K,2)
    keypoint_conf: np.ndarray  # (T,K)

    @property
    def frames(self) -> int:
        return int(self.keypoints.shape[0])

    def validate(self, where: Path | str | None = None) -> None:
        T, K = self.keypoints.shape[0], len(self.keypoint_names)
        if self.keypoints.shape != (T, K, 2) or self.keypoint_conf.shape != (T, K):
            raise GrailError(f"shapes {self.keypoints.shape} / {self.keypoint_conf.shape} for {K} keypoints",
                             file=where, field="keypoints")
        seen = self.keypoint_conf > 0
        if not np.all(np.isfinite(self.keypoints[seen])):
            raise GrailError("a seen keypoint is NaN or infinite", file=where, field="keypoints")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise GrailError(f"fps must be positive (got {self.fps})", file=where, field="fps")

    def save(self, path: Path, extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the file; `extra` arrays (e.g. the object tracker's raw track) go beside the keypoints.
        Keypoints are kept in float64: rounded to float32 (about 5e-6 px) and fitted again, MediaPipe
        place_table s1 came out 41.4 mm / 12.75 cm instead of the stage's 37.8 / 7.01 (the fit's
        discrete choices amplify any change), so the file could not reproduce its own reconstruction."""
        self.validate(path)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, fps=np.array(self.fps), width=np.array(self.width), height=np.array(self.height),
                            estimator=np.array(self.estimator), oracle=np.array(self.oracle),
                            keypoint_names=np.array(self.keypoint_names), keypoints=np.asarray(self.keypoints, np.float64),
                            keypoint_conf=self.keypoint_conf.astype(np.float32), **(extra or {}))
        write_bytes_atomic(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Observations":
        try:
            with np.load(path, allow_pickle=False) as z:
                obs = cls(fps=float(z["fps"]), width=int(z["width"]), height=int(z["height"]),
                          estimator=str(z["estimator"]), oracle=bool(z["oracle"]),
                          keypoint_names=[str(s) for s in z["keypoint_names"]],
                          keypoints=np.array(z["keypoints"], float), keypoint_conf=np.array(z["keypoint_conf"], float))
        except KeyError as err:
            raise GrailError("missing key", file=path, field=str(err).strip("'\"")) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise GrailError(f"cannot read ({err})", file=path) from None
        obs.validate(path)
        return obs
