"""Support heights of the known scene: what a foot or a seat stands on at any (x, y).

A height map cast once with MuJoCo rays straight down through ``scene.xml`` with its objects left
out (they move; the floor, terrain and furniture do not), then sampled bilinearly. Fitting asks it
for the support under each ankle at every iteration, so it must be cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from grail.errors import GrailError

RAY_TOP_M = 5.0


def static_scene(scene_xml: Path, objects: tuple[str, ...]) -> mujoco.MjModel:
    """scene.xml without the named (movable) object bodies: the environment they move in."""
    try:
        spec = mujoco.MjSpec.from_file(str(scene_xml))
    except Exception as err:  # MuJoCo raises ValueError for bad XML
        raise GrailError(f"cannot load the scene ({err})", file=scene_xml) from None
    for body in list(spec.worldbody.bodies):
        if body.name in objects:
            spec.delete(body)
    return spec.compile()


@dataclass
class SupportMap:
    origin: np.ndarray    # (2,) x, y of cell (0, 0)
    cell: float           # metres
    heights: np.ndarray   # (nx, ny) support height (0 where nothing but the floor)

    @classmethod
    def from_scene(cls, scene_xml: Path, centre: np.ndarray, half_extent: float = 4.0, cell: float = 0.02,
                   objects: tuple[str, ...] = ()) -> "SupportMap":
        """Heights on a square of side 2 * half_extent around `centre` (x, y)."""
        model = static_scene(scene_xml, objects)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        n = int(round(2 * half_extent / cell)) + 1
        origin = np.asarray(centre, float)[:2] - half_extent
        xs, ys = origin[0] + cell * np.arange(n), origin[1] + cell * np.arange(n)
        heights = np.zeros((n, n))
        groups = np.array([1, 0, 0, 1, 0, 0], np.uint8)  # floor (0) and collision parts (3), not visuals
        geom = np.zeros(1, np.int32)
        down = np.array([0.0, 0.0, -1.0])
        for i, x in enumerate(xs):
            for j, y in enumerate(ys):
                d = mujoco.mj_ray(model, data, np.array([x, y, RAY_TOP_M]), down, groups, 1, -1, geom)
                heights[i, j] = RAY_TOP_M - d if d >= 0 else 0.0
        return cls(origin, cell, heights)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Support height (N,) under points (N,2 or 3), bilinear; outside the map: the floor (0)."""
        p = (np.asarray(points, float)[:, :2] - self.origin) / self.cell
        n = np.array(self.heights.shape) - 1
        inside = np.all((p >= 0) & (p <= n), axis=1)
        q = np.clip(p, 0, n - 1e-9)
        i0 = np.floor(q).astype(int)
        f = q - i0
        h = self.heights
        v = (h[i0[:, 0], i0[:, 1]] * (1 - f[:, 0]) * (1 - f[:, 1]) + h[i0[:, 0] + 1, i0[:, 1]] * f[:, 0] * (1 - f[:, 1])
             + h[i0[:, 0], i0[:, 1] + 1] * (1 - f[:, 0]) * f[:, 1] + h[i0[:, 0] + 1, i0[:, 1] + 1] * f[:, 0] * f[:, 1])
        return np.where(inside, v, 0.0)
