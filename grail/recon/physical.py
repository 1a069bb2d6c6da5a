"""What physics rules out of a fitted body, as differentiable terms for the human fit.

One view leaves a body's depth open along each viewing ray. Two configurations a fit can slide
into that way are impossible, whatever the image says:

- a body inside the scene: a knee through a chair, a hand under the floor. `SceneSolids` holds the
  static scene's convex collision parts (and the floor) as half-spaces, so a point's penetration
  depth is a max over face planes, exact inside a convex part;
- a body that would fall: its centre of mass far out beyond its feet. `centre_of_mass` weighs
  the body's segments by the anthropometric mass fractions of de Leva (1996, J. Biomech. 29(9),
  1223-1230; the male column, halved between left and right segments where the table lists one
  side), and `balance_excess` measures how far that point lies, horizontally, beyond the segment
  between the ankles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grail.recon.supports import collision_parts
from grail.video.geometry import ConvexPart

#: (segment, its end joints, mass fraction of the whole body): de Leva (1996), Table 4, males.
#: A segment's centre of mass is taken at the middle of its end joints (the head at the head
#: joint, the hand at the wrist, the foot at the ankle): the term needs it to a few centimetres.
SEGMENTS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("head", ("head",), 0.0694),
    ("trunk", ("pelvis", "neck"), 0.4346),
    ("left_upper_arm", ("left_shoulder", "left_elbow"), 0.0271),
    ("right_upper_arm", ("right_shoulder", "right_elbow"), 0.0271),
    ("left_forearm", ("left_elbow", "left_wrist"), 0.0162),
    ("right_forearm", ("right_elbow", "right_wrist"), 0.0162),
    ("left_hand", ("left_wrist",), 0.0061),
    ("right_hand", ("right_wrist",), 0.0061),
    ("left_thigh", ("left_hip", "left_knee"), 0.1416),
    ("right_thigh", ("right_hip", "right_knee"), 0.1416),
    ("left_shank", ("left_knee", "left_ankle"), 0.0433),
    ("right_shank", ("right_knee", "right_ankle"), 0.0433),
    ("left_foot", ("left_ankle",), 0.0137),
    ("right_foot", ("right_ankle",), 0.0137),
)

FLOOR_PLANE = (0.0, 0.0, 1.0, 0.0)  # the ground, z <= 0, under every scene (ARCHITECTURE.md)


def segment_weights(joint_names: list[str] | tuple[str, ...]) -> np.ndarray:
    """(N,) weight of each named joint in the centre of mass (sums to 1): each segment's mass
    shared between its end joints."""
    weights = np.zeros(len(joint_names))
    for _, ends, mass in SEGMENTS:
        for name in ends:
            weights[list(joint_names).index(name)] += mass / len(ends)
    return weights / weights.sum()


def centre_of_mass(joints: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(T,3) centre of mass of joints (T,N,3) under segment weights (N,)."""
    return (joints * weights[:, None]).sum(-2)


def balance_excess(com: torch.Tensor, left_ankle: torch.Tensor, right_ankle: torch.Tensor,
                   reach_m: float) -> torch.Tensor:
    """(T,) how far (m) the centre of mass lies horizontally beyond `reach_m` from the segment
    between the ankles: zero for any body that could stand, squat, sit or lean over its feet."""
    a, b, p = left_ankle[:, :2], right_ankle[:, :2], com[:, :2]
    ab = b - a
    s = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-9)).clamp(0.0, 1.0)
    gap = (p - a - s[:, None] * ab).norm(dim=-1)
    return torch.relu(gap - reach_m)


@dataclass
class SceneSolids:
    """The static scene's solid parts as padded half-space sets: inside a part where every
    ``n . x + d <= 0``; the floor is one more part."""

    planes: torch.Tensor   # (P,F,4): unit outward normal and offset; padding planes never bind

    @classmethod
    def from_scene(cls, scene_xml: Path, objects: tuple[str, ...] = ()) -> "SceneSolids":
        """Collision parts of scene.xml without its movable objects (they move; the floor,
        terrain and furniture do not)."""
        parts = [np.array([FLOOR_PLANE])]
        for world in collision_parts(scene_xml, objects):
            part = ConvexPart.from_vertices("", world)
            parts.append(np.concatenate([part.normals, part.offsets[:, None]], axis=1))
        faces = max(len(p) for p in parts)
        padded = np.tile(np.array([0.0, 0.0, 0.0, -1e6]), (len(parts), faces, 1))
        for k, p in enumerate(parts):
            padded[k, :len(p)] = p
        return cls(torch.tensor(padded))

    def clearance(self, points: torch.Tensor) -> torch.Tensor:
        """(...,) signed distance of points (...,3) to the nearest solid: negative inside (the
        penetration depth, exact for convex parts), a lower bound of the distance outside."""
        n, d = self.planes[..., :3], self.planes[..., 3]
        per_part = (torch.einsum("...k,pfk->...pf", points, n) + d).amax(-1)
        return per_part.amin(-1)
