"""Import a third-party mesh (OBJ, GLB/GLTF, STL, PLY) as a metric, Z-up, watertight asset with
convex collision parts and mass properties.

Pipeline: load (trimesh) -> unit/scale to metres -> up axis to Z -> repair (merge vertices,
drop degenerate/duplicate faces, fill holes, fix winding/normals, union overlapping bodies)
-> reject if still open or without volume -> size sanity check for the category -> simplification
above ``max_faces`` (open3d quadric decimation when open3d imports, else trimesh's (needs
fast_simplification), else manifold3d's edge collapse; the result must stay watertight) -> recentre (base on z=0, bounding box centred on x=y=0) -> convex decomposition
(CoACD, fast settings, capped part count; convex hull only when CoACD fails) -> mass from
density x volume, inertia from the closed mesh.

Size rule (largest extent in metres, after unit/scale), per category:

=========== ============== ===========================================
category    expected range rejected (GrailError) when
=========== ============== ===========================================
tabletop    0.05 - 0.60 m  < 0.05/3 m  or  > 0.60*3 m
floor       0.50 - 1.50 m  < 0.50/3 m  or  > 1.50*3 m
furniture   0.50 - 1.50 m  < 0.50/3 m  or  > 1.50*3 m
terrain     0.30 - 10.0 m  < 0.30/3 m  or  > 10.0*3 m
=========== ============== ===========================================

Between the expected range and the rejection bounds a warning is issued (``warnings.warn``,
category :class:`AssetSizeWarning`, and a log record). ``strict_size=False`` turns rejections into
warnings too. The error names the ``unit`` (or ``scale``) field and suggests a unit that fits.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from pathlib import Path

import numpy as np
import trimesh

from grail.errors import GrailError

from . import _geom as g
from .params import CATEGORY_RGBA
from .types import CATEGORIES, Asset

log = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".obj", ".glb", ".gltf", ".stl", ".ply")
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
SIZE_RANGES = {
    "tabletop": (0.05, 0.60),
    "floor": (0.50, 1.50),
    "furniture": (0.50, 1.50),
    "terrain": (0.30, 10.0),
}
REJECT_FACTOR = 3.0
MIN_SCALE, MAX_SCALE = 1e-5, 1e4

# CoACD settings chosen for speed (a mug decomposes in about a second on one core).
COACD_SETTINGS = dict(
    threshold=0.08,
    preprocess_mode="off",  # the mesh is already repaired and watertight
    resolution=500,
    mcts_nodes=10,
    mcts_iterations=60,
    mcts_max_depth=2,
    max_ch_vertex=64,
    merge=True,
    seed=0,
)
MAX_PARTS = 16


class AssetSizeWarning(UserWarning):
    """An imported mesh is mildly outside the expected size range for its category."""


def import_mesh(
    path,
    *,
    category: str,
    scale: float | None = None,
    unit: str | None = None,
    density: float = 500.0,
    name: str | None = None,
    max_faces: int = 20000,
    strict_size: bool = True,
    up_axis: str | None = None,
    max_parts: int = MAX_PARTS,
) -> Asset:
    """Load a mesh file and turn it into an :class:`Asset` (see the module docstring).

    Exactly one of ``unit`` ('m', 'cm', 'mm', 'in') or ``scale`` (metres per file unit) must be
    given. ``up_axis`` is 'z' or 'y'; by default glTF/GLB files are Y-up (as the glTF spec says)
    and everything else is Z-up. Every bad input raises GrailError naming the file and field.
    """
    path = Path(path)
    f = str(path)
    if category not in CATEGORIES:
        raise GrailError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}", file=f, field="category")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise GrailError(f"unsupported extension {path.suffix!r}; expected one of {list(SUPPORTED_EXTENSIONS)}",
                         file=f, field="extension")
    if not path.is_file():
        raise GrailError("file not found", file=f, field="path")
    factor, size_field = _scale_factor(f, scale, unit)
    if not (isinstance(density, (int, float)) and math.isfinite(density) and 1.0 < density <= 25000.0):
        raise GrailError(f"density must be in (1, 25000] kg/m^3, got {density!r}", file=f, field="density")
    if up_axis is None:
        up_axis = "y" if ext in (".glb", ".gltf") else "z"
    if up_axis not in ("y", "z"):
        raise GrailError(f"up_axis must be 'y' or 'z', got {up_axis!r}", file=f, field="up_axis")
    if int(max_faces) < 100:
        raise GrailError(f"max_faces must be >= 100, got {max_faces}", file=f, field="max_faces")

    mesh = _load(path)
    faces_in = int(len(mesh.faces))
    mesh.apply_scale(factor)
    if up_axis == "y":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]))

    mesh, repairs = repair(mesh, file=f)
    _check_size(mesh, category, f, size_field, factor, strict_size)

    if len(mesh.faces) > max_faces:
        mesh, how = _simplify(mesh, int(max_faces), f)
        repairs.append(how)

    mesh.apply_translation(g.recentre_offset(mesh))

    t0 = time.perf_counter()
    parts, method = convex_parts(mesh, max_parts=max_parts)
    t_decomp = time.perf_counter() - t0

    mass, com, inertia = g.mass_properties(mesh, float(density))
    asset_name = name or _safe_name(path.stem)
    params = {
        "source": path.name,
        "format": ext[1:],
        "unit": unit,
        "scale": float(factor),
        "up_axis": up_axis,
        "density": float(density),
        "mass": float(mass),
        "faces_in": faces_in,
        "faces": int(len(mesh.faces)),
        "repairs": repairs,
        "collision_method": method,
        "decomposition_seconds": round(t_decomp, 3),
    }
    return Asset(
        name=asset_name,
        kind="imported",
        category=category,
        visual=mesh,
        collision=parts,
        mass=float(mass),
        com=com,
        inertia=inertia,
        rgba=CATEGORY_RGBA.get(category, (0.7, 0.7, 0.7, 1.0)),
        params=params,
        support_height=None,
        static=category == "terrain",
    )


def _safe_name(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return s or "mesh"


def _scale_factor(f: str, scale, unit) -> tuple[float, str]:
    if (scale is None) == (unit is None):
        raise GrailError("give exactly one of unit ('m','cm','mm','in') or scale", file=f,
                         field="unit" if unit is not None else "scale")
    if unit is not None:
        if unit not in UNITS:
            raise GrailError(f"unknown unit {unit!r}; expected one of {list(UNITS)}", file=f, field="unit")
        return UNITS[unit], "unit"
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise GrailError(f"scale must be a number, got {scale!r}", file=f, field="scale") from None
    if not math.isfinite(s) or s <= 0:
        raise GrailError(f"scale must be a positive finite number, got {scale!r}", file=f, field="scale")
    if not (MIN_SCALE <= s <= MAX_SCALE):
        raise GrailError(f"absurd scale {s:g} (allowed {MIN_SCALE:g}..{MAX_SCALE:g} metres per file unit)",
                         file=f, field="scale")
    return s, "scale"


def _load(path: Path) -> trimesh.Trimesh:
    f = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types on corrupt input
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise GrailError(f"cannot read mesh ({type(exc).__name__}: {msg})", file=f, field="file") from None
    if isinstance(loaded, trimesh.Scene):  # force="mesh" gives an empty Scene when nothing loads
        geoms = [m for m in loaded.dump() if isinstance(m, trimesh.Trimesh)] if loaded.geometry else []
        if not geoms:
            raise GrailError("file contains no triangle mesh", file=f, field="file")
        loaded = trimesh.util.concatenate(geoms)
    if not isinstance(loaded, trimesh.Trimesh):
        raise GrailError(f"file contains no triangle mesh (got {type(loaded).__name__})", file=f, field="file")
    if len(loaded.faces) == 0 or len(loaded.vertices) < 3:
        raise GrailError("mesh is empty (no faces)", file=f, field="file")
    if not np.all(np.isfinite(loaded.vertices)):
        raise GrailError("mesh has NaN or infinite vertex coordinates", file=f, field="vertices")
    # Geometry only: textures/normals/UV seams would keep vertices split and the mesh open.
    return trimesh.Trimesh(vertices=np.asarray(loaded.vertices, float), faces=np.asarray(loaded.faces), process=False)


# ---- repair -------------------------------------------------------------------------------


def repair(mesh: trimesh.Trimesh, *, file: str | None = None) -> tuple[trimesh.Trimesh, list[str]]:
    """Make a closed, consistently outward-wound solid, or raise GrailError (field 'mesh').

    Steps: merge coincident vertices, drop degenerate and duplicate faces, fill every boundary
    loop (fan around its centroid), fix winding and normals, union overlapping bodies.
    """
    done: list[str] = []
    n_v = len(mesh.vertices)
    mesh = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)
    mesh.merge_vertices(digits_vertex=_merge_digits(mesh))
    if len(mesh.vertices) < n_v:
        done.append(f"merged {n_v - len(mesh.vertices)} vertices")
    n_f = len(mesh.faces)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) < n_f:
        done.append(f"removed {n_f - len(mesh.faces)} degenerate/duplicate faces")
    if len(mesh.faces) < 4:
        raise GrailError(f"mesh has only {len(mesh.faces)} valid faces; cannot enclose a volume", file=file, field="mesh")

    ext = mesh.extents
    if ext.min() <= 1e-6 * max(ext.max(), 1e-12):
        raise GrailError(f"mesh is flat (extents {np.round(ext, 6).tolist()} m): zero volume", file=file, field="mesh")

    if not mesh.is_watertight:
        n_holes = fill_holes(mesh)
        if n_holes:
            done.append(f"filled {n_holes} holes")
    if not mesh.is_watertight:
        n_open = _open_edge_count(mesh)
        raise GrailError(f"mesh is not watertight after repair ({n_open} open or non-manifold edges); "
                         "fix it in a modelling tool", file=file, field="mesh")
    if not mesh.is_winding_consistent or mesh.volume < 0:
        trimesh.repair.fix_normals(mesh, multibody=True)
        done.append("fixed winding/normals")
    if not mesh.is_winding_consistent:
        raise GrailError("mesh winding cannot be made consistent (non-orientable?)", file=file, field="mesh")

    bodies = mesh.split(only_watertight=False)
    if len(bodies) > 1:
        try:
            merged = g.union(list(bodies))
            if merged.is_watertight and merged.volume > 0:
                mesh = merged
                done.append(f"united {len(bodies)} bodies")
        except Exception as exc:  # keep the bodies as they are; volumes may double count overlaps
            log.warning("%s: could not unite %d bodies (%s); overlapping volume counts twice", file, len(bodies), exc)

    vol = float(mesh.volume)
    box_vol = float(np.prod(mesh.extents))
    if not math.isfinite(vol) or vol <= 0 or vol < 1e-6 * box_vol:
        raise GrailError(f"mesh encloses no volume ({vol:.3g} m^3)", file=file, field="mesh")
    return mesh, done


def _merge_digits(mesh: trimesh.Trimesh) -> int:
    # merge vertices closer than ~1e-7 of the mesh size
    size = float(max(mesh.extents.max(), 1e-9))
    return int(max(0, min(12, -math.floor(math.log10(size * 1e-7)))))


def _open_edge_count(mesh: trimesh.Trimesh) -> int:
    e = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return int(np.sum(counts != 2))


def fill_holes(mesh: trimesh.Trimesh) -> int:
    """Close every simple boundary loop with a fan of triangles around its centroid (in place).

    Returns the number of loops filled. Loops through non-manifold vertices are left open.
    """
    edges = mesh.edges  # directed, as they appear in their faces
    key = np.sort(edges, axis=1)
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inv.reshape(-1)] == 1]
    if len(boundary) == 0:
        return 0
    # A new face must run along each boundary edge in the opposite direction.
    nxt: dict[int, int] = {}
    for a, b in boundary:
        if int(b) in nxt:  # vertex with two outgoing boundary edges: ambiguous loop
            return 0
        nxt[int(b)] = int(a)
    verts = [mesh.vertices]
    faces = [mesh.faces]
    n_vert = len(mesh.vertices)
    seen: set[int] = set()
    loops = 0
    for start in list(nxt):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        cur = nxt[start]
        ok = True
        while cur != start:
            if cur in seen or cur not in nxt:
                ok = False
                break
            loop.append(cur)
            seen.add(cur)
            cur = nxt[cur]
        if not ok or len(loop) < 3:
            continue
        if len(loop) == 3:
            faces.append(np.array([loop]))
        else:
            c = mesh.vertices[loop].mean(axis=0)
            verts.append(c[None])
            ci = n_vert
            n_vert += 1
            ring = np.array(loop)
            faces.append(np.c_[ring, np.roll(ring, -1), np.full(len(ring), ci)])
        loops += 1
    if loops:
        new = trimesh.Trimesh(vertices=np.vstack(verts), faces=np.vstack(faces), process=False)
        mesh.vertices = new.vertices
        mesh.faces = new.faces
    return loops


# ---- size, simplification, decomposition --------------------------------------------------


def _check_size(mesh, category, f, size_field, factor, strict):
    lo, hi = SIZE_RANGES[category]
    size = float(mesh.extents.max())
    if lo <= size <= hi:
        return
    msg = f"largest extent {size:.4g} m is outside the {category} range {lo:g}-{hi:g} m"
    if size < lo / REJECT_FACTOR or size > hi * REJECT_FACTOR:
        fits = [u for u, s in UNITS.items() if lo <= size / factor * s <= hi]
        hint = f"; unit {fits[0]!r} would fit" if fits else ""
        if strict:
            raise GrailError(f"{msg} by more than {REJECT_FACTOR:g}x (wrong {size_field}?){hint}", file=f, field=size_field)
        msg += hint
    log.warning("%s: %s", f, msg)
    warnings.warn(f"{f}: {size_field}: {msg}", AssetSizeWarning, stacklevel=3)


def _simplify(mesh: trimesh.Trimesh, max_faces: int, f: str) -> tuple[trimesh.Trimesh, str]:
    n0 = len(mesh.faces)
    candidates = []
    try:
        import open3d as o3d  # optional: its wheel needs system libraries that may be missing

        om = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.faces))
        om = om.simplify_quadric_decimation(target_number_of_triangles=max_faces)
        candidates.append(("open3d", trimesh.Trimesh(np.asarray(om.vertices), np.asarray(om.triangles), process=False)))
    except Exception as exc:
        log.debug("open3d simplification unavailable: %s", exc)
        try:
            candidates.append(("trimesh", mesh.simplify_quadric_decimation(face_count=max_faces)))
        except Exception as exc2:
            log.debug("trimesh simplification unavailable: %s", exc2)
            simple = _manifold_simplify(mesh, max_faces)
            if simple is not None:
                candidates.append(("manifold3d", simple))
    for how, simple in candidates:
        try:
            simple, _ = repair(simple, file=f)
        except GrailError as exc:
            log.warning("%s: %s simplification broke the mesh (%s); keeping %d faces", f, how, exc.reason, n0)
            continue
        return simple, f"simplified {n0}->{len(simple.faces)} faces ({how})"
    log.warning("%s: no mesh simplifier available; keeping %d faces (> max_faces %d)", f, n0, max_faces)
    return mesh, f"not simplified ({n0} faces)"


def _manifold_simplify(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh | None:
    """manifold3d's edge-collapse simplification (stays manifold); the tolerance doubles from
    1e-4 of the mesh size until the face budget is met (at most 2 % of the size)."""
    try:
        man = g.to_manifold(mesh)
    except Exception as exc:
        log.debug("manifold3d simplification unavailable: %s", exc)
        return None
    size = float(mesh.extents.max())
    tol = 1e-4 * size
    while tol <= 0.02 * size:
        simple = man.simplify(tol)
        if simple.num_tri() <= max_faces:
            return g.to_trimesh(simple)
        tol *= 2.0
    return None


def convex_parts(mesh: trimesh.Trimesh, *, max_parts: int = MAX_PARTS, **settings) -> tuple[list[trimesh.Trimesh], str]:
    """Convex collision parts: the hull when the mesh is convex, else CoACD (capped at
    ``max_parts``); falls back to the single convex hull (logged) when CoACD fails."""
    if mesh.is_convex:
        return [mesh.convex_hull], "convex"
    try:
        import coacd

        if hasattr(coacd, "set_log_level"):
            coacd.set_log_level("error")
        opts = {**COACD_SETTINGS, **settings, "max_convex_hull": int(max_parts)}
        result = coacd.run_coacd(coacd.Mesh(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int32)), **opts)
        parts = []
        for v, fc in result:
            if len(v) < 4:
                continue
            hull = trimesh.convex.convex_hull(np.asarray(v, float))
            if hull.volume > 1e-12:
                parts.append(hull)
        if not parts:
            raise RuntimeError("CoACD returned no parts")
        return parts, "coacd"
    except Exception as exc:
        log.warning("convex decomposition failed (%s: %s); using the convex hull", type(exc).__name__, exc)
        return [mesh.convex_hull], "hull"
