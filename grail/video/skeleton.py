"""Forward kinematics of the character rig with world-frame rotation deltas.

A pose is one rotation ``D_j`` per bone, expressed in the world frame relative to the rest pose:
bone ``j`` ends up with orientation ``D_j @ R_rest_j`` and its origin at
``p_parent + D_parent @ (rest_j - rest_parent)``. With every ``D`` the identity the character
stands in its rest pose (upright, facing +x). Working with world deltas keeps the animator's
vocabulary simple ("rotate the thigh so it points at the knee target"); the rest-relative local
rotations ``L_j = D_parent^T D_j`` written to gt.npz follow from them.

Everything is vectorised over frames: arrays are (T, J, 3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grail.character.model import CharacterModel
from grail.rotations import homogeneous


@dataclass
class Skeleton:
    names: list[str]
    parents: np.ndarray  # (J,)
    rest: np.ndarray  # (J,4,4) rest bone transforms (world)
    offsets: np.ndarray  # (J,3) rest origin minus parent's rest origin (root: its rest origin)

    @classmethod
    def from_character(cls, character: CharacterModel) -> "Skeleton":
        rest = np.asarray(character.bone_rest, float)
        parents = np.asarray(character.bone_parents, int)
        pos = rest[:, :3, 3]
        offsets = pos - np.where(parents[:, None] >= 0, pos[np.maximum(parents, 0)], 0.0)
        for j, p in enumerate(parents):
            if p >= j:
                raise ValueError("bones must be ordered parents first")
        return cls(list(character.bone_names), parents, rest, offsets)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def rest_pos(self, name: str) -> np.ndarray:
        return self.rest[self.index(name), :3, 3].copy()

    def children_of(self, j: int) -> list[int]:
        return [k for k, p in enumerate(self.parents) if p == j]

    def positions(self, root_pos: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """Bone origins (T,J,3) for root positions (T,3) and world deltas (T,J,3,3)."""
        T, J = deltas.shape[:2]
        pos = np.empty((T, J, 3))
        for j in range(J):
            p = self.parents[j]
            if p < 0:
                pos[:, j] = root_pos
            else:
                pos[:, j] = pos[:, p] + deltas[:, p] @ self.offsets[j]
        return pos

    def world(self, root_pos: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """Bone world transforms (T,J,4,4)."""
        return homogeneous(deltas @ self.rest[None, :, :3, :3], self.positions(root_pos, deltas))

    def local_rotations(self, deltas: np.ndarray) -> np.ndarray:
        """Rest-relative rotation of each bone relative to its parent: D_parent^T D_j."""
        local = deltas.copy()
        has_parent = self.parents >= 0
        par = self.parents[has_parent]
        local[:, has_parent] = np.swapaxes(deltas[:, par], -1, -2) @ deltas[:, has_parent]
        return local

    def propagate(self, deltas: np.ndarray, bone: int, skip: set[int] | None = None) -> None:
        """Make every descendant of `bone` (except those in `skip` and below) rotate with it."""
        skip = skip or set()
        for k in self.children_of(bone):
            if k in skip:
                continue
            deltas[:, k] = deltas[:, bone]
            self.propagate(deltas, k, skip)
