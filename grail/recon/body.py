"""The character's rig in torch: forward kinematics that the fitting differentiates through.

A pose is a root position and one rest-relative rotation per bone (axis-angle, ``L_j``): bone
``j`` turns by ``D_j = D_parent L_j`` from its rest orientation and its origin is
``p_parent + D_parent (rest_j - rest_parent)`` — the convention of ``grail/video/skeleton.py``
and of ``gt.npz``'s ``joint_rot``, so reconstructions and ground truth compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from grail.errors import GrailError


def rotvec_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle -> (...,3,3) rotation (Rodrigues; smooth at zero)."""
    theta2 = (v * v).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(v.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=v.dtype).expand(K.shape)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


@dataclass
class TorchRig:
    names: list[str]
    parents: list[int]
    rest_rot: torch.Tensor     # (J,3,3) rest orientations (character frame, facing +x)
    offsets: torch.Tensor      # (J,3) rest origin minus the parent's
    joint_bones: dict[str, int]  # named joint -> bone index

    @classmethod
    def load(cls, character_npz: Path) -> "TorchRig":
        from grail.character.anny_body import ANNY_JOINT_BONES
        from grail.character.smplx_body import SMPLX_JOINT_BONES

        try:
            with np.load(character_npz, allow_pickle=False) as z:
                names = [str(s) for s in z["bone_names"]]
                parents = [int(p) for p in z["bone_parents"]]
                rest = np.array(z["bone_rest"], float)
                model = str(z["model"])
        except (OSError, ValueError, KeyError) as err:
            raise GrailError(f"cannot read the character ({err})", file=character_npz) from None
        mapping = {"anny": ANNY_JOINT_BONES, "smplx": SMPLX_JOINT_BONES}.get(model)
        if mapping is None:
            raise GrailError(f"unknown character model {model!r}", file=character_npz, field="model")
        pos = rest[:, :3, 3]
        offsets = pos - np.where(np.array(parents)[:, None] >= 0, pos[np.maximum(parents, 0)], 0.0)
        return cls(names, parents, torch.tensor(rest[:, :3, :3]), torch.tensor(offsets),
                   {j: names.index(b) for j, b in mapping.items() if b in names})

    @property
    def bones(self) -> int:
        return len(self.names)

    @cached_property
    def levels(self) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """The bones by depth below the root (depth 0: parentless), each level's parents as
        indices into the level above, and the permutation from that order back to bone order."""
        depth: list[int] = []
        for p in self.parents:  # parents come before their children
            depth.append(0 if p < 0 else depth[p] + 1)
        levels = [[j for j, d in enumerate(depth) if d == k] for k in range(max(depth) + 1)]
        ups = [torch.zeros(0, dtype=torch.long)] + [torch.tensor([levels[k - 1].index(self.parents[j]) for j in level])
                                                    for k, level in enumerate(levels) if k > 0]
        order = [j for level in levels for j in level]
        return [torch.tensor(level) for level in levels], ups, torch.tensor(np.argsort(order))

    def forward(self, root_pos: torch.Tensor, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bone origins (T,J,3) and world deltas D (T,J,3,3) for root positions (T,3) and
        rest-relative local rotations (T,J,3) axis-angle. The chain is walked a depth level at a
        time, all bones of a level in one product (13 levels, not 36 bones: the human fit of a
        264-frame clip 49.0 -> 40.1 s, its graph being many small operations)."""
        L = rotvec_to_matrix(local)
        levels, ups, order = self.levels
        deltas = [L.index_select(1, levels[0])]  # index_select: a cheaper backward than indexing
        positions = [root_pos[:, None].expand(-1, len(levels[0]), -1)]
        for level, up in zip(levels[1:], ups[1:]):
            parent = deltas[-1].index_select(1, up)
            positions.append(positions[-1].index_select(1, up) + (parent @ self.offsets[level][..., None])[..., 0])
            deltas.append(parent @ L.index_select(1, level))
        return torch.cat(positions, 1).index_select(1, order), torch.cat(deltas, 1).index_select(1, order)

    def joints(self, positions: torch.Tensor, names: list[str] | tuple[str, ...]) -> torch.Tensor:
        """(T,N,3) positions of named joints."""
        return positions[:, [self.joint_bones[n] for n in names]]

    def points(self, positions: torch.Tensor, deltas: torch.Tensor, names: list[str] | tuple[str, ...],
               offsets: torch.Tensor) -> torch.Tensor:
        """(T,N,3) points carried by named joints' bones: each joint moved by its offset (N,3),
        given in the bone's rest-relative frame (where a detector's landmark sits on the body)."""
        bones = [self.joint_bones[n] for n in names]
        return positions[:, bones] + (deltas[:, bones] @ offsets[..., None])[..., 0]


def rest_height(rig: TorchRig, name: str) -> float:
    """Height of a named joint above the ground in the rest pose (the rest root stands at its
    own offset above the feet)."""
    pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), torch.zeros((1, rig.bones, 3), dtype=torch.float64))
    return float(rig.offsets[0, 2] + pos[0, rig.joint_bones[name], 2])


def hinge_axes(rig: TorchRig) -> tuple[list[int], torch.Tensor]:
    """Knee and elbow bones and their hinge axes (world axes at rest: rotations are rest-relative
    in world axes). A hinge axis is perpendicular to the limb and to the forward direction (+x):
    the plane in which a leg or an A-pose arm bends."""
    pos, _ = rig.forward(torch.zeros((1, 3), dtype=torch.float64), torch.zeros((1, rig.bones, 3), dtype=torch.float64))
    bones, axes = [], []
    for upper, lower in (("left_hip", "left_knee"), ("right_hip", "right_knee"),
                         ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow")):
        limb = (pos[0, rig.joint_bones[lower]] - pos[0, rig.joint_bones[upper]]).numpy()
        axis = np.cross(limb, [1.0, 0.0, 0.0])
        bones.append(rig.joint_bones[lower])
        axes.append(axis / np.linalg.norm(axis))
    return bones, torch.tensor(np.array(axes))
