"""Walking routes around furniture: where the pelvis goes between two stances.

Furniture is seen from above as the convex hull of its footprint. A route is straight when the
straight line keeps the pelvis clear of every footprint; otherwise a shortest path is searched on
a grid whose cost rises near furniture, and shortened to the fewest waypoints that keep the
clearance. Start and goal may lie close to furniture (standing at a table to reach it), so the
clearance asked of a segment relaxes near its ends: leaving a table is allowed, cutting through
a stool is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import ConvexHull

from grail.errors import GrailError

PASS_CLEARANCE_M = 0.32  # pelvis to furniture while walking past it: half the shoulders plus the arm swing
MIN_CLEARANCE_M = 0.14  # never closer than this (a stance at a table is 0.16 m or more)
CLEARANCE_SLOPE = 0.8  # how fast the required clearance grows with the distance from a segment's ends


@dataclass
class Footprint2D:
    name: str
    hull: np.ndarray  # (K,2) convex polygon, counter-clockwise

    @classmethod
    def of_points(cls, name: str, points: np.ndarray) -> "Footprint2D":
        xy = np.asarray(points, float)[:, :2]
        hull = ConvexHull(xy)
        return cls(name, xy[hull.vertices])

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance (N,) from points (N,2) to the polygon (negative inside)."""
        pts = np.asarray(pts, float).reshape(-1, 2)
        a, b = self.hull, np.roll(self.hull, -1, axis=0)
        ab = b - a
        ap = pts[:, None, :] - a[None]
        t = np.clip(np.einsum("nki,ki->nk", ap, ab) / np.einsum("ki,ki->k", ab, ab), 0.0, 1.0)
        d = np.linalg.norm(ap - t[..., None] * ab, axis=2).min(axis=1)
        inside = np.all(ab[None, :, 0] * ap[..., 1] - ab[None, :, 1] * ap[..., 0] >= 0.0, axis=1)
        return np.where(inside, -d, d)


class RoutePlanner:
    def __init__(self, footprints: list[Footprint2D], cell: float = 0.04):
        self.footprints = footprints
        self.cell = cell

    def clearance(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, float).reshape(-1, 2)
        if not self.footprints:
            return np.full(len(pts), np.inf)
        return np.min([f.distance(pts) for f in self.footprints], axis=0)

    def segment_ok(self, a: np.ndarray, b: np.ndarray, floor: float = PASS_CLEARANCE_M) -> bool:
        """Whether the pelvis can move straight from a to b: clear by `floor` (at most
        PASS_CLEARANCE_M), relaxed near the ends to the clearance they already have."""
        length = float(np.linalg.norm(b - a))
        u = np.linspace(0.0, 1.0, max(int(length / 0.02), 1) + 1)
        d = self.clearance(a + u[:, None] * (b - a))
        need = np.minimum.reduce([np.full_like(u, min(floor, PASS_CLEARANCE_M)), d[0] + CLEARANCE_SLOPE * u * length,
                                  d[-1] + CLEARANCE_SLOPE * (1 - u) * length])
        return bool(np.all(d >= need - 1e-9))

    def route(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        """Waypoints after `start`, ending at `goal`."""
        start, goal = np.asarray(start, float)[:2], np.asarray(goal, float)[:2]
        if self.segment_ok(start, goal):
            return [goal]
        grid_path = self._grid_path(start, goal)
        return self._shorten([start, *grid_path, goal])[1:]

    def _grid_path(self, start: np.ndarray, goal: np.ndarray) -> list[np.ndarray]:
        pts = np.vstack([start, goal, *[f.hull for f in self.footprints]])
        lo, hi = pts.min(0) - 1.0, pts.max(0) + 1.0
        nx, ny = (np.ceil((hi - lo) / self.cell).astype(int) + 1)
        gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        centres = lo + np.c_[gx.ravel(), gy.ravel()] * self.cell
        d = self.clearance(centres)
        closeness = np.clip((PASS_CLEARANCE_M - d) / PASS_CLEARANCE_M, 0.0, None)
        cost = 1.0 + 40.0 * closeness ** 2 + np.where(d < MIN_CLEARANCE_M, 200.0, 0.0)
        rows, cols, weights = [], [], []
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            ok = (gx + dx < nx) & (gy + dy >= 0) & (gy + dy < ny)
            a = (gx * ny + gy)[ok]
            b = ((gx + dx) * ny + (gy + dy))[ok]
            w = self.cell * np.hypot(dx, dy) * 0.5 * (cost[a] + cost[b])
            rows += [a, b]
            cols += [b, a]
            weights += [w, w]
        graph = coo_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(nx * ny, nx * ny)).tocsr()
        s = int(np.argmin(np.linalg.norm(centres - start, axis=1)))
        g = int(np.argmin(np.linalg.norm(centres - goal, axis=1)))
        _, pred = dijkstra(graph, indices=s, return_predecessors=True)
        if pred[g] < 0 and g != s:
            raise GrailError("no walkable route to the goal around the furniture", field="furniture")
        path, k = [], g
        while k != s and k >= 0:
            path.append(centres[k])
            k = pred[k]
        return path[::-1]

    def _shorten(self, pts: list[np.ndarray]) -> list[np.ndarray]:
        """Greedy line-of-sight shortening: from each kept point jump to the farthest one whose
        straight segment is as clear as the grid path it replaces."""
        d = self.clearance(np.array(pts))
        out, i = [pts[0]], 0
        while i < len(pts) - 1:
            j = len(pts) - 1
            while j > i + 1 and not self.segment_ok(pts[i], pts[j], float(d[i:j + 1].min()) - 0.01):
                j -= 1
            out.append(pts[j])
            i = j
        return out
