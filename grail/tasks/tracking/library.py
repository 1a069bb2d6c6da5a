"""The motions a tracker trains on, as flat tensors: every motion resampled to the control rate and
concatenated, with each motion's first frame and length. A global frame index then addresses any
frame of any motion, which is what mjlab's tracking terms index with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grail.errors import GrailError
from grail.library.build import INDEX_NAME, MOTIONS_DIR, LibraryIndex
from grail.tasks.tracking.reference import Reference, load_reference


def library_motions(path: Path | str) -> list[tuple[str, Path]]:
    """(name, directory) of each motion: a library built by `grail library build` (its index
    order), one motion directory (motion.npz + meta.json), or a folder of motion directories."""
    path = Path(path)
    if (path / INDEX_NAME).is_file():
        index = LibraryIndex.load(path)
        if not index.motions:
            raise GrailError("the library holds no motions", file=path / INDEX_NAME, field="motions")
        return [(i, path / MOTIONS_DIR / i) for i in index.ids]
    if (path / "motion.npz").is_file():
        return [(path.parent.name if path.name == "robot" else path.name, path)]
    children = sorted(p for p in path.iterdir() if (p / "motion.npz").is_file()) if path.is_dir() else []
    if children:
        return [(p.name, p) for p in children]
    raise GrailError("not a motion library (no index.json), a motion (no motion.npz) or a folder of motions",
                     file=path)


@dataclass
class MotionLibrary:
    """Concatenated reference tensors (N frames in all) and per-motion bookkeeping."""

    names: list[str]
    start: torch.Tensor        # (M,) first global frame of each motion
    length: torch.Tensor       # (M,) frames of each motion
    joint_pos: torch.Tensor    # (N, J)
    joint_vel: torch.Tensor    # (N, J)
    body_pos_w: torch.Tensor   # (N, B, 3)
    body_quat_w: torch.Tensor  # (N, B, 4)
    body_lin_vel_w: torch.Tensor
    body_ang_vel_w: torch.Tensor

    @property
    def time_step_total(self) -> int:
        return int(self.joint_pos.shape[0])

    @property
    def num_motions(self) -> int:
        return len(self.names)

    @classmethod
    def from_references(cls, refs: list[Reference], device: str = "cpu") -> "MotionLibrary":
        def cat(key: str) -> torch.Tensor:
            return torch.tensor(np.concatenate([getattr(r, key) for r in refs]), dtype=torch.float32, device=device)

        lengths = [r.frames for r in refs]
        short = [r.name for r in refs if r.frames < 2]
        if short:
            raise GrailError(f"motion {short[0]!r} has fewer than two frames at the control rate", field="motions")
        return cls(names=[r.name for r in refs],
                   start=torch.tensor(np.cumsum([0] + lengths[:-1]), dtype=torch.long, device=device),
                   length=torch.tensor(lengths, dtype=torch.long, device=device),
                   **{k: cat(k) for k in ("joint_pos", "joint_vel", "body_pos_w", "body_quat_w",
                                          "body_lin_vel_w", "body_ang_vel_w")})

    @classmethod
    def load(cls, path: Path | str, joint_names: list[str], body_names: list[str], fps: float,
             device: str = "cpu") -> "MotionLibrary":
        refs = [load_reference(d, joint_names, body_names, fps, name=n) for n, d in library_motions(path)]
        return cls.from_references(refs, device)
