"""The in-memory asset record shared by procedural generation, mesh import and file writing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

CATEGORIES = ("tabletop", "floor", "furniture", "terrain")


@dataclass
class Asset:
    """A metric, Z-up asset ready for a scene builder.

    Frames: objects and furniture have their base on z=0 and their bounding box centred on
    x=y=0. Terrain has its walkable part starting at x=0 (x = walking direction), centred on
    y=0, ground level z=0 for x<0.

    ``collision`` holds convex parts in the same frame as ``visual``; MuJoCo uses each as one
    convex mesh geom. ``com`` and ``inertia`` (about the com, asset-frame axes) describe the
    rigid body; terrain is static with mass 0.
    """

    name: str
    kind: str
    category: str
    visual: trimesh.Trimesh
    collision: list[trimesh.Trimesh]
    mass: float
    com: np.ndarray
    inertia: np.ndarray
    rgba: tuple[float, float, float, float]
    params: dict = field(default_factory=dict)
    support_height: float | None = None
    static: bool = False

    @property
    def extents(self) -> np.ndarray:
        """Axis-aligned size (x, y, z) of the visual mesh in metres."""
        return np.asarray(self.visual.extents, dtype=float)

    @property
    def volume(self) -> float:
        return float(self.visual.volume)

    def summary(self) -> dict:
        """Plain numbers describing the asset (for tables, logs and specs)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "category": self.category,
            "extents": [float(v) for v in self.extents],
            "volume": self.volume,
            "mass": float(self.mass),
            "com": [float(v) for v in self.com],
            "inertia_diag": [float(v) for v in np.diag(self.inertia)],
            "watertight": bool(self.visual.is_watertight),
            "collision_parts": len(self.collision),
            "support_height": self.support_height,
            "static": self.static,
        }
