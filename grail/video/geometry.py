"""The static world and the objects of a composed scene, as queries for consistency metrics.

Static world: the floor (z = 0) plus every furniture and terrain collision part, posed by its
spec pose (furniture does not move during a video) and stored as half-spaces ``n . x + d <= 0``
(scipy ``ConvexHull.equations``). Objects: their visual mesh in the body frame (as scene.xml uses
it), queried for signed distance at any pose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import ConvexHull, cKDTree

from grail.errors import GrailError
from grail.rotations import matrices_from_quats, transforms
from grail.scene.spec import ResolvedItem, ResolvedScene, load_resolved

FLOOR = "floor"
_VERTICAL = 1e-9  # |n_z| below this: a vertical face (constrains xy only)
_EDGE = 1e-9  # tolerance of the xy-projection test (points on an edge count as covered)
QUERY_EDGE_FRACTION = 0.1  # distance queries split object faces to edges <= this x object size
# A part is a point's support only where the point is not under it: at least the part's bottom
# minus this (a foot under a table stands on the floor, not on the table top).
UNDER_MARGIN_M = 0.05


@dataclass(frozen=True)
class ConvexPart:
    """One convex collision part in world coordinates: inside where every ``n . x + d <= 0``."""

    item: str
    normals: np.ndarray  # (F,3) unit outward normals
    offsets: np.ndarray  # (F,)
    lo: np.ndarray  # (3,) bounding box
    hi: np.ndarray

    @classmethod
    def from_vertices(cls, item: str, vertices: np.ndarray) -> "ConvexPart":
        eq = ConvexHull(vertices).equations
        eq = np.unique(np.round(eq, 12), axis=0)  # a box's hull has two triangles per face
        return cls(item, eq[:, :3], eq[:, 3], vertices.min(0), vertices.max(0))

    def in_box(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: points within the part's bounding box (a necessary condition for inside)."""
        return np.all((points >= self.lo) & (points <= self.hi), axis=1)

    def plane_distance(self, points: np.ndarray) -> np.ndarray:
        """(N,) max signed plane distance: negative inside, minus the depth (exact for convex)."""
        return (points @ self.normals.T + self.offsets).max(axis=1)

    def top_bottom(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top z, bottom z and coverage of the vertical line through each xy (N,2)."""
        n, d = self.normals, self.offsets
        lin = xy @ n[:, :2].T + d  # (N,F): n_xy . xy + d
        up, down = n[:, 2] > _VERTICAL, n[:, 2] < -_VERTICAL
        side = ~(up | down)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_at = -lin / n[:, 2]
        top = z_at[:, up].min(axis=1) if up.any() else np.full(len(xy), np.inf)
        bottom = z_at[:, down].max(axis=1) if down.any() else np.full(len(xy), -np.inf)
        covered = bottom <= top + _EDGE
        if side.any():
            covered &= (lin[:, side] <= _EDGE).all(axis=1)
        return top, bottom, covered


@dataclass
class ObjectShape:
    """A manipulable object: its visual mesh in the body frame and cached query structures."""

    name: str
    mesh: trimesh.Trimesh
    pos: np.ndarray  # spec (resting) pose
    quat: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def triangles(self) -> np.ndarray:
        """(F,3,3) triangles of the visual mesh."""
        if "tri" not in self._cache:
            self._cache["tri"] = np.asarray(self.mesh.triangles, float)
        return self._cache["tri"]

    def _query(self) -> tuple[np.ndarray, cKDTree, cKDTree, np.ndarray]:
        """The surface split into small triangles (same surface, tight bounds), a KD-tree of
        surface points (their vertices and centroids), one of their centroids, and their radii
        (centroid to farthest vertex: every surface point is that close to a tree point)."""
        if "query" not in self._cache:
            extent = float(np.ptp(self.mesh.bounds, axis=0).max())
            v, f = trimesh.remesh.subdivide_to_size(np.asarray(self.mesh.vertices), np.asarray(self.mesh.faces),
                                                    max_edge=QUERY_EDGE_FRACTION * extent, max_iter=12)
            tri = v[f]
            centre = tri.mean(axis=1)
            radius = np.linalg.norm(tri - centre[:, None], axis=2).max(axis=1)
            self._cache["query"] = (tri, cKDTree(np.concatenate([v, centre])), cKDTree(centre), radius)
        return self._cache["query"]

    def box_distance(self, local: np.ndarray) -> np.ndarray:
        """(N,) distance to the local bounding box (0 inside): a lower bound of the surface distance."""
        lo, hi = self.mesh.bounds
        gap = np.maximum(np.maximum(lo - local, local - hi), 0.0)
        return np.linalg.norm(gap, axis=1)

    def closest(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distance (N,), query-triangle index (N,) and closest point (N,3) on the surface."""
        if len(local) == 0:
            return np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3))
        tri, vtree, ctree, radius = self._query()
        ub, _ = vtree.query(local)  # the nearest surface point bounds the distance from above
        cands = ctree.query_ball_point(local, ub + float(radius.max()) + 1e-12)
        pi = np.repeat(np.arange(len(local)), [len(c) for c in cands])
        ti = np.concatenate([np.asarray(c, dtype=np.int64) for c in cands])
        keep = np.linalg.norm(local[pi] - tri[ti].mean(axis=1), axis=1) - radius[ti] <= ub[pi] + 1e-12
        pi, ti = pi[keep], ti[keep]  # the triangle holding the closest point always passes
        points = trimesh.triangles.closest_point(tri[ti], local[pi])
        dist = np.linalg.norm(points - local[pi], axis=1)
        order = np.lexsort((dist, pi))
        first = order[np.r_[True, pi[order][1:] != pi[order][:-1]]]
        return dist[first], ti[first], points[first]

    def unsigned_distance(self, local: np.ndarray) -> np.ndarray:
        """(N,) exact distance from local points to the mesh surface."""
        return self.closest(local)[0]

    def winding(self, local: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
        """(N,) generalised winding number (1 inside a closed outward mesh, 0 outside)."""
        tri = self.triangles
        out = np.zeros(len(local))
        step = max(1, chunk // max(len(tri), 1))
        for s in range(0, len(local), step):
            p = local[s:s + step]
            a, b, c = (tri[None, :, k] - p[:, None] for k in range(3))
            la, lb, lc = (np.sqrt(np.einsum("pfi,pfi->pf", v, v)) for v in (a, b, c))
            num = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
            den = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc
                   + np.einsum("pfi,pfi->pf", b, c) * la + np.einsum("pfi,pfi->pf", c, a) * lb)
            out[s:s + step] = np.arctan2(num, den).sum(axis=1) / (2 * np.pi)
        return out

    def _hull(self) -> np.ndarray | None:
        """Half-spaces of the mesh when it is convex (a fast exact inside test), else None."""
        if "hull" not in self._cache:
            self._cache["hull"] = ConvexHull(np.asarray(self.mesh.vertices)).equations if self.mesh.is_convex else None
        return self._cache["hull"]

    def _normals(self) -> np.ndarray:
        """Outward unit face normals (flipped when the mesh is oriented inwards)."""
        if "normals" not in self._cache:
            a, b, c = np.moveaxis(self._query()[0], 1, 0)
            n = np.cross(b - a, c - a)
            inward = np.einsum("fi,fi->", a, np.cross(b, c)) < 0  # negative signed volume
            n = -n if inward else n
            self._cache["normals"] = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        return self._cache["normals"]

    def signed_distance_local(self, local: np.ndarray) -> np.ndarray:
        """(N,) signed distance of local points to the surface (negative inside).

        Sign: outside the bounding box, positive; a convex mesh, its half-spaces; otherwise the
        normal of the closest triangle when the closest point is inside that face (exact for a
        closed mesh), and the winding number where it lies on an edge or a vertex."""
        local = np.asarray(local, float).reshape(-1, 3)
        d, ti, c = self.closest(local)
        inside = np.zeros(len(local), bool)
        maybe = np.flatnonzero(self.box_distance(local) == 0.0)
        hull = self._hull()
        if len(maybe) and hull is not None:
            inside[maybe] = (local[maybe] @ hull[:, :3].T + hull[:, 3]).max(axis=1) < 0
        elif len(maybe):
            bary = trimesh.triangles.points_to_barycentric(self._query()[0][ti[maybe]], c[maybe])
            on_face = (bary.min(axis=1) > 1e-6) & (d[maybe] > 1e-9)
            side = np.einsum("ni,ni->n", local[maybe] - c[maybe], self._normals()[ti[maybe]])
            inside[maybe[on_face]] = side[on_face] < 0
            rest = maybe[~on_face]
            if len(rest):
                inside[rest] = np.abs(self.winding(local[rest])) > 0.5
        return np.where(inside, -d, d)


@dataclass
class SceneGeometry:
    """Static convex parts (world), the floor z = 0, and the scene's objects."""

    parts: list[ConvexPart]
    objects: dict[str, ObjectShape]
    static_names: list[str]  # "floor" first, then the furniture and terrain items

    @classmethod
    def load(cls, scene_dir: Path) -> "SceneGeometry":
        """Read ``spec.yaml`` and the meshes of a scene directory (or of a sequence directory)."""
        scene_dir = Path(scene_dir)
        if not (scene_dir / "spec.yaml").is_file() and (scene_dir / "scene" / "spec.yaml").is_file():
            scene_dir = scene_dir / "scene"
        spec: ResolvedScene = load_resolved(scene_dir / "spec.yaml")
        parts: list[ConvexPart] = []
        for item in [*spec.terrain, *spec.furniture]:
            T = transforms(np.array(item.pose.pos), np.array(item.pose.quat))
            for rel in item.collision:
                v = _read_mesh(scene_dir / rel, item).vertices
                parts.append(ConvexPart.from_vertices(item.name, v @ T[:3, :3].T + T[:3, 3]))
        objects = {
            o.name: ObjectShape(o.name, _read_mesh(scene_dir / o.mesh, o), np.array(o.pose.pos, float),
                                np.array(o.pose.quat, float))
            for o in spec.objects
        }
        names = [FLOOR, *[i.name for i in [*spec.terrain, *spec.furniture]]]
        return cls(parts, objects, names)

    # ---- the static world ---------------------------------------------------------------

    def deepest(self, points: np.ndarray, exclude: set[str] | tuple = ()) -> tuple[np.ndarray, np.ndarray]:
        """Depth (N,) of each point inside the static world and the index (N,) into
        ``static_names`` of the item it is deepest in (-1 where the depth is 0)."""
        points = np.asarray(points, float).reshape(-1, 3)
        depth = np.maximum(-points[:, 2], 0.0) if FLOOR not in exclude else np.zeros(len(points))
        owner = np.where(depth > 0, 0, -1)
        for part in self.parts:
            if part.item in exclude:
                continue
            idx = np.flatnonzero(part.in_box(points))
            if len(idx) == 0:
                continue
            d = -part.plane_distance(points[idx])
            better = d > depth[idx]
            idx = idx[better]
            depth[idx] = d[better]
            owner[idx] = self.static_names.index(part.item)
        return depth, owner

    def penetration(self, points: np.ndarray, exclude: set[str] | tuple = ()) -> np.ndarray:
        """(N,) depth in metres of each point inside the static world (0 outside)."""
        return self.deepest(points, exclude)[0]

    def support_height(self, xy: np.ndarray, z: np.ndarray | None = None, margin: float = UNDER_MARGIN_M) -> np.ndarray:
        """(N,) top of the static world under each xy: the floor (0) or the highest part top.

        With ``z`` given, a part counts only where the point is not under it (``z`` at least its
        bottom minus ``margin``): a foot under a table stands on the floor, not on the table top.
        """
        xy = np.asarray(xy, float).reshape(-1, 2)
        out = np.zeros(len(xy))
        zz = None if z is None else np.asarray(z, float).reshape(-1)
        for part in self.parts:
            m = np.all((xy >= part.lo[:2] - _EDGE) & (xy <= part.hi[:2] + _EDGE), axis=1)
            idx = np.flatnonzero(m)
            if len(idx) == 0:
                continue
            top, bottom, covered = part.top_bottom(xy[idx])
            if zz is not None:
                covered &= zz[idx] >= bottom - margin
            sel = idx[covered]
            out[sel] = np.maximum(out[sel], top[covered])
        return out

    # ---- objects --------------------------------------------------------------------------

    def object_mesh(self, name: str) -> trimesh.Trimesh:
        """The visual mesh of object ``name`` in its body frame."""
        return self._object(name).mesh

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The resting (spec) pose of object ``name``: pos (3,), quat wxyz (4,)."""
        o = self._object(name)
        return o.pos.copy(), o.quat.copy()

    def object_signed_distance(self, name: str, pos: np.ndarray, quat_wxyz: np.ndarray,
                               points: np.ndarray) -> np.ndarray:
        """(N,) signed distance (negative inside) from world points to the object at that pose."""
        return self._object(name).signed_distance_local(_to_local(points, pos, quat_wxyz))

    def object_contact(self, name: str, pos: np.ndarray, quat_wxyz: np.ndarray,
                       points: np.ndarray) -> tuple[float, float]:
        """(min |signed distance|, max depth inside) of a point set against the object, computing
        exact distances only for the points that can be the closest or inside."""
        o = self._object(name)
        local = _to_local(points, pos, quat_wxyz)
        tri, stree, _, radius = o._query()
        near, _ = stree.query(local)  # distance to the nearest surface sample: within radius of exact
        in_box = o.box_distance(local)
        lower = np.maximum(in_box, near - radius.max())
        cand = np.flatnonzero((lower <= near.min()) | (in_box == 0.0))  # could be nearest, or inside
        sd = o.signed_distance_local(local[cand])
        return float(np.abs(sd).min()), float(max(-sd.min(), 0.0))

    def _object(self, name: str) -> ObjectShape:
        if name not in self.objects:
            raise GrailError(f"no object {name!r} in the scene (known: {', '.join(self.objects) or 'none'})",
                             field="object")
        return self.objects[name]


def _to_local(points: np.ndarray, pos: np.ndarray, quat_wxyz: np.ndarray) -> np.ndarray:
    R = matrices_from_quats(np.asarray(quat_wxyz, float))
    return (np.asarray(points, float).reshape(-1, 3) - np.asarray(pos, float)) @ R


def _read_mesh(path: Path, item: ResolvedItem) -> trimesh.Trimesh:
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for unreadable files
        raise GrailError(f"cannot read mesh of {item.name!r} ({err})", file=path) from None
    if len(mesh.faces) == 0:
        raise GrailError(f"mesh of {item.name!r} has no faces", file=path)
    return mesh
