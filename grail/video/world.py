"""What the animator knows about a composed scene: walkable ground, furniture and object geometry.

Read from the scene directory only (spec.yaml and meshes/), as every stage must.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import trimesh

from grail.assets.procedural import surface_height
from grail.rotations import matrix_from_quat
from grail.scene.spec import ResolvedItem, ResolvedScene
from grail.video.geometry import ConvexPart, ObjectShape


def item_transform(item: ResolvedItem) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat(np.asarray(item.pose.quat, float))
    T[:3, 3] = item.pose.pos
    return T


def yaw_of(R: np.ndarray) -> float:
    return float(np.arctan2(R[1, 0], R[0, 0]))


class TerrainGround:
    """Height of the walkable ground (floor z=0 and terrain tops); furniture is not walkable."""

    def __init__(self, terrain: list[ResolvedItem]):
        self.items = [(SimpleNamespace(kind=t.kind, params=t.params), np.linalg.inv(item_transform(t)), item_transform(t))
                      for t in terrain]

    def height(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, float)
        z = np.zeros(xy.shape[:-1])
        for asset, inv, T in self.items:
            local = xy @ inv[:2, :2].T + inv[:2, 3]
            z = np.maximum(z, surface_height(asset, local) + T[2, 3])
        return z


@dataclass
class Body:
    """A furniture piece or object: its pose and its mesh vertices (local and world)."""

    item: ResolvedItem
    T: np.ndarray  # (4,4) world pose (rest)
    local: np.ndarray  # (V,3) visual mesh vertices, body frame
    collision_local: list[np.ndarray]  # convex parts, body frame
    faces: np.ndarray  # (F,3) triangles of the visual mesh

    @property
    def world(self) -> np.ndarray:
        return self.local @ self.T[:3, :3].T + self.T[:3, 3]

    @property
    def top(self) -> float:
        return float(self.world[:, 2].max())

    def extent_along(self, direction: np.ndarray, centre: np.ndarray, band: float | None = None) -> float:
        """How far the surface reaches from `centre` along a horizontal direction (near centre height)."""
        w = self.world
        if band is not None:
            near = np.abs(w[:, 2] - centre[2]) < band
            w = w[near] if near.sum() >= 3 else w
        return float(np.max((w - centre) @ direction))

    @cached_property
    def parts(self) -> list[ConvexPart]:
        """The convex collision parts in world coordinates (at the rest pose)."""
        return [ConvexPart.from_vertices(self.item.name, p @ self.T[:3, :3].T + self.T[:3, 3]) for p in self.collision_local]

    def clearance(self, points: np.ndarray) -> np.ndarray:
        """(N,) distance from world points to the nearest convex part, from its face planes: exact
        inside and beside a face, an underestimate near edges and corners (safe for avoidance)."""
        points = np.asarray(points, float).reshape(-1, 3)
        return np.min([p.plane_distance(points) for p in self.parts], axis=0, initial=np.inf)

    @cached_property
    def shape(self) -> ObjectShape:
        """Distance queries against the visual mesh in the body frame (built once, cached)."""
        mesh = trimesh.Trimesh(self.local, self.faces, process=False)
        return ObjectShape(self.item.name, mesh, self.T[:3, 3].copy(), np.asarray(self.item.pose.quat, float))

    def surface_hit(self, centre: np.ndarray, direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a ray from `centre` (inside the object) along `direction` leaves the surface: the
        world point and the outward face normal there. Grasps put the palm flat on that face."""
        tri = self.world[self.faces]  # (F,3,3)
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        p = np.cross(d, e2)
        det = np.einsum("fi,fi->f", e1, p)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = centre - tri[:, 0]
        u = np.einsum("fi,fi->f", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("fi,fi->f", e2, q) * inv
        hit = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)
        if not hit.any():  # centre outside a non-closed mesh: fall back to the farthest vertex
            return centre + d * self.extent_along(d, centre), d
        k = int(np.argmax(np.where(hit, t, -np.inf)))  # the last exit, for meshes with inner faces
        n = np.cross(e1[k], e2[k])
        n = n / np.linalg.norm(n)
        return centre + t[k] * d, n if n @ d > 0 else -n


@dataclass
class SceneWorld:
    spec: ResolvedScene
    ground: TerrainGround
    furniture: dict[str, Body]
    objects: dict[str, Body]

    @classmethod
    def load(cls, scene_dir: Path, spec: ResolvedScene) -> "SceneWorld":
        def body(item: ResolvedItem) -> Body:
            mesh = trimesh.load(scene_dir / item.mesh, force="mesh", process=False)
            parts = [np.asarray(trimesh.load(scene_dir / c, force="mesh", process=False).vertices, float) for c in item.collision]
            return Body(item, item_transform(item), np.asarray(mesh.vertices, float), parts,
                        np.asarray(mesh.faces, int))

        return cls(spec, TerrainGround(spec.terrain), {f.name: body(f) for f in spec.furniture},
                   {o.name: body(o) for o in spec.objects})

    def support_of(self, obj: Body) -> Body | None:
        return self.furniture.get(obj.item.support) if obj.item.support else None
