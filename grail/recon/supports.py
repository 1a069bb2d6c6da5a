"""Support heights of the known scene: what a foot or a seat stands on at any (x, y).

The static scene's collision parts (``scene.xml`` with its objects left out: they move; the
floor, terrain and furniture do not) are convex, so the vertical line through a point meets each
in one interval, found from its face planes (`grail.video.geometry.ConvexPart.top_bottom`). A
grid holds, per cell, the intervals of the parts over it; a query samples it bilinearly. Fitting
asks it for the support under each ankle many times, so it must be cheap.

A point's support is the top of the highest part it is not under (its height at least the
part's bottom minus `UNDER_MARGIN_M`), or the floor: a foot under a chair's seat or a table's
top stands on the floor. A top-down height map put it on the seat, and counted it 30 cm deep in
the chair (MediaPipe sit_chair s2: 19 % of frames 'penetrating'). An object is under a part only
when all of it is (`under_object`): a box half through a table top is in it, not under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np

from grail.errors import GrailError
from grail.video.geometry import UNDER_MARGIN_M, ConvexPart


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


def collision_parts(scene_xml: Path, objects: tuple[str, ...] = ()) -> list[np.ndarray]:
    """World vertices (V,3) of each collision mesh of the static scene (the floor aside)."""
    model = static_scene(scene_xml, objects)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    parts = []
    for g in range(model.ngeom):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH or model.geom_contype[g] == 0:
            continue
        mesh = model.geom_dataid[g]
        start, count = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
        local = model.mesh_vert[start:start + count].astype(float)
        parts.append(local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g])
    return parts


@dataclass
class SupportMap:
    origin: np.ndarray    # (2,) x, y of cell (0, 0)
    cell: float           # metres
    tops: np.ndarray      # (L,nx,ny) top of each part over a cell, highest first (-inf: no more parts)
    bottoms: np.ndarray   # (L,nx,ny) the same parts' bottoms (+inf: no more parts)

    @classmethod
    def from_scene(cls, scene_xml: Path, centre: np.ndarray, half_extent: float = 4.0, cell: float = 0.02,
                   objects: tuple[str, ...] = ()) -> "SupportMap":
        """The parts over a square of side 2 * half_extent around `centre` (x, y)."""
        n = int(round(2 * half_extent / cell)) + 1
        origin = np.asarray(centre, float)[:2] - half_extent
        x, y = np.meshgrid(origin[0] + cell * np.arange(n), origin[1] + cell * np.arange(n), indexing="ij")
        xy = np.stack([x.ravel(), y.ravel()], axis=1)
        tops, bottoms = [np.full((1, n * n), -np.inf)], [np.full((1, n * n), np.inf)]
        for vertices in collision_parts(scene_xml, objects):
            part = ConvexPart.from_vertices("", vertices)
            top, bottom, covered = part.top_bottom(xy)
            if covered.any():
                tops.append(np.where(covered, top, -np.inf)[None])
                bottoms.append(np.where(covered, bottom, np.inf)[None])
        tops, bottoms = np.concatenate(tops), np.concatenate(bottoms)
        order = np.argsort(-tops, axis=0, kind="stable")
        layers = max(1, int(np.isfinite(tops).sum(axis=0).max()))  # the most parts over any one cell
        keep = order[:layers]
        shape = (layers, n, n)
        return cls(origin, cell, np.take_along_axis(tops, keep, 0).reshape(shape),
                   np.take_along_axis(bottoms, keep, 0).reshape(shape))

    @property
    def heights(self) -> np.ndarray:
        """(nx,ny) the highest support of each cell (0: the floor alone)."""
        return np.maximum(self.tops[0], 0.0)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Support height (N,) under points (N,3) (N,2: the highest there), bilinear; outside the
        map: the floor (0)."""
        points = np.asarray(points, float)
        p = (points[:, :2] - self.origin) / self.cell
        z = points[:, 2] if points.shape[1] == 3 else np.full(len(points), np.inf)
        n = np.array(self.tops.shape[1:]) - 1
        inside = np.all((p >= 0) & (p <= n), axis=1)
        q = np.clip(p, 0, n - 1e-9)
        i0 = np.floor(q).astype(int)
        f = q - i0
        v = np.zeros(len(points))
        for di, dj, w in ((0, 0, (1 - f[:, 0]) * (1 - f[:, 1])), (1, 0, f[:, 0] * (1 - f[:, 1])),
                          (0, 1, (1 - f[:, 0]) * f[:, 1]), (1, 1, f[:, 0] * f[:, 1])):
            i, j = i0[:, 0] + di, i0[:, 1] + dj
            over = z >= self.bottoms[:, i, j] - UNDER_MARGIN_M  # (L,N): parts the point is not under
            v += w * np.maximum(np.where(over, self.tops[:, i, j], -np.inf).max(axis=0), 0.0)
        return np.where(inside, v, 0.0)


def under_object(support: Callable[[np.ndarray], np.ndarray], points: np.ndarray) -> np.ndarray:
    """(...,V) the support under each point of an object posed as points (...,V,3): each asked at
    the object's highest point, so a part counts under all of it unless it lies wholly under it."""
    top = np.broadcast_to(points[..., 2].max(axis=-1, keepdims=True), points.shape[:-1])
    asked = np.concatenate([points[..., :2], top[..., None]], axis=-1)
    return support(asked.reshape(-1, 3)).reshape(points.shape[:-1])
