"""Object surfaces and the robot's hand: where a hand touches an object, and how it lies there.

The G1's hand is a capsule (``*_hand_collision``) whose axis tilts towards the palm, and it is
thicker than the character's hand, so a hand in contact is placed by its contact point rather than
by its palm centre: the point of the object's surface nearest the character's palm, with the
wrist-to-palm line along the surface, the palm facing in, and the hand ``CONTACT_GAP`` away.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import mujoco
import numpy as np
import trimesh
from scipy.spatial import ConvexHull

from grail.rotations import matrix_from_quat

CONTACT_GAP = 0.002         # the character's palms are placed 2 mm from the surface too


@dataclass(frozen=True)
class HandGeometry:
    """The robot hand in its palm site's frame: finger direction, palm normal, and how far the
    palm-side surface lies from the site when the hand lies flat."""

    fingers: np.ndarray   # unit, from the wrist along the hand (the site's +x)
    palm: np.ndarray      # unit, perpendicular to it, pointing out of the palm
    depth: float          # site to the hand's furthest palm-side point along `palm`

    @classmethod
    def from_model(cls, model: mujoco.MjModel, side: str) -> "HandGeometry":
        """The palm site's +x runs from the wrist along the hand; the capsule sits off that line
        towards the palm and tilts the same way (the fingers curl), so a hand lying along a
        surface touches it with its fingers, and its wrist stays clear."""
        geom, site = model.geom(f"{side}_hand_collision"), model.site(f"{side}_palm")
        site_R = matrix_from_quat(site.quat)
        axis = site_R.T @ matrix_from_quat(geom.quat)[:, 2]
        centre = site_R.T @ (geom.pos - site.pos)
        fingers = np.array([1.0, 0.0, 0.0])
        across = centre - (centre @ fingers) * fingers
        palm = across / np.linalg.norm(across) if np.linalg.norm(across) > 1e-6 else np.array([0, -1.0, 0])
        ends = (centre + geom.size[1] * axis, centre - geom.size[1] * axis)
        depth = max(float(e @ palm) for e in ends) + float(geom.size[0])
        return cls(fingers, palm, depth)

    def site_rotation(self, fingers_w: np.ndarray, palm_w: np.ndarray) -> np.ndarray:
        """(T,3,3) site orientations that put the fingers and the palm along the given world directions."""
        local = np.stack([self.fingers, self.palm, np.cross(self.fingers, self.palm)], axis=1)
        world = np.stack([fingers_w, palm_w, np.cross(fingers_w, palm_w)], axis=2)
        return world @ local.T


class ObjectSurface:
    """The collision surface of one scene body, in the body's frame."""

    def __init__(self, model: mujoco.MjModel, body: str) -> None:
        self.body = body
        self._parts = _collision_parts(model, model.body(body).id)

    @cached_property
    def mesh(self) -> trimesh.Trimesh:
        return trimesh.util.concatenate(self._parts)

    def nearest(self, points_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest surface points (N,3) and outward unit normals (N,3) for points in the body frame."""
        points_local = np.atleast_2d(points_local)
        closest, _, tri = trimesh.proximity.closest_point(self.mesh, points_local)
        away = points_local - closest
        length = np.linalg.norm(away, axis=1, keepdims=True)
        face_normal = self.mesh.face_normals[tri]
        normal = np.where(length > 1e-6, away / np.maximum(length, 1e-9), face_normal)
        inside = self.contains(points_local)
        normal[inside] = -normal[inside]
        return closest, normal

    @cached_property
    def _halfspaces(self) -> list[np.ndarray]:
        """Each part's convex hull as plane equations (MuJoCo collides with the hulls too)."""
        return [ConvexHull(part.vertices).equations for part in self._parts]

    def contains(self, points_local: np.ndarray) -> np.ndarray:
        """(N,) True for points inside any of the collision parts."""
        points = np.atleast_2d(points_local)
        inside = np.zeros(len(points), bool)
        for eq in self._halfspaces:
            inside |= np.all(points @ eq[:, :3].T + eq[:, 3] <= 0, axis=1)
        return inside


def _collision_parts(model: mujoco.MjModel, body_id: int) -> list[trimesh.Trimesh]:
    parts = []
    for g in np.flatnonzero(model.geom_bodyid == body_id):
        if model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0:
            continue
        mesh = _geom_mesh(model, g)
        if mesh is None:
            continue
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = matrix_from_quat(model.geom_quat[g]), model.geom_pos[g]
        mesh.apply_transform(T)
        parts.append(mesh)
    if not parts:  # no collision geom: fall back to every geom of the body
        parts = [m for g in np.flatnonzero(model.geom_bodyid == body_id) if (m := _geom_mesh(model, g)) is not None]
    return parts


def _geom_mesh(model: mujoco.MjModel, g: int) -> trimesh.Trimesh | None:
    kind, size = model.geom_type[g], model.geom_size[g]
    if kind == mujoco.mjtGeom.mjGEOM_MESH:
        m = model.geom_dataid[g]
        v0, nv = model.mesh_vertadr[m], model.mesh_vertnum[m]
        f0, nf = model.mesh_faceadr[m], model.mesh_facenum[m]
        return trimesh.Trimesh(model.mesh_vert[v0:v0 + nv].copy(), model.mesh_face[f0:f0 + nf].copy(), process=False)
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        return trimesh.creation.box(extents=2 * size)
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return trimesh.creation.icosphere(subdivisions=3, radius=size[0])
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return trimesh.creation.capsule(height=2 * size[1], radius=size[0])
    if kind == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return trimesh.creation.cylinder(radius=size[0], height=2 * size[1])
    return None
