"""Small geometry helpers: exact solids via manifold3d, mass properties, recentring."""

from __future__ import annotations

import numpy as np
import manifold3d as mf
import trimesh


def to_trimesh(man: "mf.Manifold") -> trimesh.Trimesh:
    """The manifold's triangles as they are. No trimesh processing: merging vertices by distance
    can weld two distinct vertices that lie closer than trimesh's tolerance (as a boolean union
    of rotated boxes produces) and so turn a closed manifold into a non-manifold mesh."""
    m = man.to_mesh64() if hasattr(man, "to_mesh64") else man.to_mesh()
    verts = np.asarray(m.vert_properties, dtype=float)[:, :3]
    faces = np.asarray(m.tri_verts, dtype=np.int64)
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


def to_manifold(mesh: trimesh.Trimesh) -> "mf.Manifold":
    if hasattr(mf, "Mesh64"):
        m = mf.Mesh64(
            vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float64),
            tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint64),
        )
    else:
        m = mf.Mesh(
            vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float32),
            tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint32),
        )
    man = mf.Manifold(m)
    if man.status() != mf.Error.NoError:
        raise ValueError(f"mesh is not a valid manifold ({man.status()})")
    return man


def union(meshes: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Exact boolean union (manifold3d); touching or overlapping pieces merge into one solid."""
    mans = [to_manifold(m) for m in meshes]
    if len(mans) == 1:
        return to_trimesh(mans[0])
    return to_trimesh(mf.Manifold.batch_boolean(mans, mf.OpType.Add))


def box(lo, hi) -> trimesh.Trimesh:
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    b = trimesh.creation.box(extents=hi - lo)
    b.apply_translation((lo + hi) / 2.0)
    return b


def _ccw(poly: np.ndarray) -> np.ndarray:
    poly = np.asarray(poly, dtype=float)
    x, y = poly[:, 0], poly[:, 1]
    area2 = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return poly if area2 > 0 else poly[::-1].copy()


def prism_xz(profile_xz, width: float) -> trimesh.Trimesh:
    """Extrude a simple polygon given in the (x, z) plane along y, centred on y=0."""
    cs = mf.CrossSection([_ccw(profile_xz)])
    man = cs.extrude(float(width))
    # Rotate +90 deg about x: (X, Y, Z) -> (X, -Z, Y), so the profile's second coordinate becomes z.
    rot = np.array([[1.0, 0, 0, 0], [0, 0, -1, width / 2.0], [0, 1, 0, 0]])
    man = man.transform(rot)
    return to_trimesh(man)


def revolve_rz(profile_rz, sections: int) -> trimesh.Trimesh:
    """Revolve a polygon given as (radius, z) points around the z axis."""
    cs = mf.CrossSection([_ccw(profile_rz)])
    return to_trimesh(cs.revolve(int(sections)))


def cylinder(radius: float, z0: float, z1: float, sections: int, x: float = 0.0, y: float = 0.0) -> trimesh.Trimesh:
    c = trimesh.creation.cylinder(radius=radius, height=z1 - z0, sections=sections)
    c.apply_translation([x, y, (z0 + z1) / 2.0])
    return c


def mass_properties(mesh: trimesh.Trimesh, density: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(mass, com, inertia about com) of a closed mesh with uniform density."""
    mp = trimesh.triangles.mass_properties(mesh.triangles, density=density)
    inertia = np.asarray(mp.inertia, dtype=float)
    inertia = 0.5 * (inertia + inertia.T)
    return float(mp.mass), np.asarray(mp.center_mass, dtype=float), inertia


def combine_mass(parts: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    """Combine (mass, com, inertia-about-com) of disjoint pieces with the parallel-axis theorem."""
    total = sum(p[0] for p in parts)
    com = sum(p[0] * p[1] for p in parts) / total
    inertia = np.zeros((3, 3))
    for m, c, i in parts:
        d = c - com
        inertia += i + m * (np.dot(d, d) * np.eye(3) - np.outer(d, d))
    return total, com, inertia


def recentre_offset(mesh: trimesh.Trimesh) -> np.ndarray:
    """Translation putting the base on z=0 and the bounding-box centre on x=y=0."""
    lo, hi = mesh.bounds
    return np.array([-(lo[0] + hi[0]) / 2.0, -(lo[1] + hi[1]) / 2.0, -lo[2]])
