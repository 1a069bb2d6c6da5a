"""Import a third-party mesh (OBJ, GLB/GLTF, STL, PLY) as a metric, Z-up, watertight asset with
convex collision parts and mass properties.

Pipeline: load (trimesh) -> unit/scale to metres -> up axis to Z -> repair (merge vertices,
drop degenerate/duplicate faces, fill holes, fix winding/normals, unite several bodies into one
solid) -> reject if still open or without volume -> size sanity check for the category ->
simplification above ``max_faces`` (open3d quadric decimation when open3d imports, else
trimesh's (needs fast_simplification), else manifold3d's edge collapse; the result must stay
watertight) -> recentre (base on z=0, bounding box centred on x=y=0) -> convex decomposition
(the file's own bodies when it has several and each is convex, method 'convex bodies'; else
CoACD, fast settings, capped part count, in a child process with a time limit; the convex hull
when CoACD times out or fails, recorded in ``params['repairs']``) -> mass from density x volume,
inertia from the closed mesh.

Several bodies: a file made of several closed bodies (e.g. overlapping boxes) is united into one
solid (manifold3d), so overlapping volume is counted once; ``repairs`` records the volume before
and after. When the union cannot be computed, bodies whose bounding boxes do not overlap are kept
as they are (their volumes cannot double count) and that is recorded; overlapping bodies that
cannot be united are rejected (GrailError, field 'path') rather than given a wrong mass.

Cache: an import is stored under ``GRAIL_CACHE_DIR/meshes/<key>/`` (default ``~/.cache/grail``),
the key being a hash of the file's bytes, every argument that changes the result, the library
versions and :data:`CACHE_FORMAT`. Composing many seeds of one template therefore imports and
decomposes each file once. A damaged entry is ignored and rebuilt; ``cache=False`` bypasses it.

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
category :class:`AssetSizeWarning`, and a log record; again on a cache hit). ``strict_size=False``
turns rejections into warnings too. The error names the ``unit`` (or ``scale``) field and suggests
a unit that fits.

Errors name the field a template user knows: 'path' (missing, unreadable or unusable file,
unsupported extension), 'unit' / 'scale', 'category', 'density'.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

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
COACD_TIMEOUT_S = 60.0
#: Bump when the import pipeline or the cache layout changes: old entries are then never read.
CACHE_FORMAT = 1
_WORKER = Path(__file__).with_name("_coacd_worker.py")


class AssetSizeWarning(UserWarning):
    """An imported mesh is mildly outside the expected size range for its category."""


def import_mesh(
    path: str | Path,
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
    coacd_timeout_s: float = COACD_TIMEOUT_S,
    cache: bool = True,
) -> Asset:
    """Load a mesh file and turn it into an :class:`Asset` (see the module docstring).

    Exactly one of ``unit`` ('m', 'cm', 'mm', 'in') or ``scale`` (metres per file unit) must be
    given. ``up_axis`` is 'z' or 'y'; by default glTF/GLB files are Y-up (as the glTF spec says)
    and everything else is Z-up. CoACD gets ``coacd_timeout_s`` seconds (then the convex hull is
    used). ``cache`` reads and writes the on-disk import cache. Every bad input raises GrailError
    naming the file and field.
    """
    path = Path(path)
    f = str(path)
    if category not in CATEGORIES:
        raise GrailError(f"unknown category {category!r}; expected one of {list(CATEGORIES)}", file=f, field="category")
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise GrailError(f"unsupported file extension {path.suffix!r}; expected one of {list(SUPPORTED_EXTENSIONS)}",
                         file=f, field="path")
    if not path.is_file():
        raise GrailError("mesh file not found", file=f, field="path")
    factor, size_field = _scale_factor(f, scale, unit)
    if not (isinstance(density, (int, float)) and math.isfinite(density) and 1.0 < density <= 25000.0):
        raise GrailError(f"density must be in (1, 25000] kg/m^3, got {density!r}", file=f, field="density")
    if up_axis is None:
        up_axis = "y" if ext in (".glb", ".gltf") else "z"
    if up_axis not in ("y", "z"):
        raise GrailError(f"up_axis must be 'y' or 'z', got {up_axis!r}", file=f, field="up_axis")
    if int(max_faces) < 100:
        raise GrailError(f"max_faces must be >= 100, got {max_faces}", file=f, field="max_faces")
    if int(max_parts) < 1:
        raise GrailError(f"max_parts must be >= 1, got {max_parts}", file=f, field="max_parts")
    if not (isinstance(coacd_timeout_s, (int, float)) and math.isfinite(coacd_timeout_s) and coacd_timeout_s > 0):
        raise GrailError(f"coacd_timeout_s must be a positive number of seconds, got {coacd_timeout_s!r}",
                         file=f, field="coacd_timeout_s")

    key = None
    if cache:
        key = _cache_key(path, ext, {
            "category": category, "unit": unit, "scale": None if scale is None else float(scale),
            "factor": float(factor), "density": float(density), "max_faces": int(max_faces),
            "strict_size": bool(strict_size), "up_axis": up_axis, "max_parts": int(max_parts),
            "coacd": COACD_SETTINGS, "coacd_timeout_s": float(coacd_timeout_s),
        })
        hit = _cache_read(key)
        if hit is not None:
            asset, notes = hit
            log.debug("%s: import cache hit (%s)", f, key)
            for note in notes:
                _warn_size(f, note)
            return _finish(asset, path, name)

    mesh = _load(path)
    faces_in = int(len(mesh.faces))
    mesh.apply_scale(factor)
    if up_axis == "y":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]))

    bodies: list[trimesh.Trimesh] = []
    mesh, repairs = repair(mesh, file=f, bodies_out=bodies)
    notes = _check_size(mesh, category, f, size_field, factor, strict_size)
    for note in notes:
        _warn_size(f, note)

    if len(mesh.faces) > max_faces:
        mesh, how = _simplify(mesh, int(max_faces), f)
        repairs.append(how)

    offset = g.recentre_offset(mesh)
    mesh.apply_translation(offset)

    t0 = time.perf_counter()
    if bodies and len(bodies) <= max_parts and all(b.is_convex for b in bodies):
        # The file's own bodies are convex: they are an exact decomposition (overlap is harmless
        # for collision), better and much faster than CoACD on their union.
        parts = [b.convex_hull.apply_translation(offset) for b in bodies]
        method, note = "convex bodies", None
    else:
        parts, method, note = convex_parts(mesh, max_parts=max_parts, timeout_s=coacd_timeout_s)
    t_decomp = time.perf_counter() - t0
    if note:
        repairs.append(note)

    mass, com, inertia = g.mass_properties(mesh, float(density))
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
    asset = Asset(
        name="mesh",
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
    if key is not None:
        _cache_write(key, asset, notes)
    return _finish(asset, path, name)


def _finish(asset: Asset, path: Path, name: str | None) -> Asset:
    """Per-call fields that are not part of the cached result: the name and the file name."""
    asset.name = name or _safe_name(path.stem)
    asset.params["source"] = path.name
    return asset


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
        raise GrailError(f"cannot read mesh file ({type(exc).__name__}: {msg})", file=f, field="path") from None
    if isinstance(loaded, trimesh.Scene):  # force="mesh" gives an empty Scene when nothing loads
        geoms = [m for m in loaded.dump() if isinstance(m, trimesh.Trimesh)] if loaded.geometry else []
        if not geoms:
            raise GrailError("mesh file contains no triangle mesh", file=f, field="path")
        loaded = trimesh.util.concatenate(geoms)
    if not isinstance(loaded, trimesh.Trimesh):
        raise GrailError(f"mesh file contains no triangle mesh (got {type(loaded).__name__})", file=f, field="path")
    if len(loaded.faces) == 0 or len(loaded.vertices) < 3:
        raise GrailError("mesh file is empty (no faces)", file=f, field="path")
    if not np.all(np.isfinite(loaded.vertices)):
        raise GrailError("mesh file has NaN or infinite vertex coordinates", file=f, field="path")
    # Geometry only: textures/normals/UV seams would keep vertices split and the mesh open.
    return trimesh.Trimesh(vertices=np.asarray(loaded.vertices, float), faces=np.asarray(loaded.faces), process=False)


# ---- cache --------------------------------------------------------------------------------


def cache_root() -> Path:
    """Directory of the mesh import cache: ``GRAIL_CACHE_DIR/meshes``."""
    from grail.character.anny_body import grail_cache_dir

    return grail_cache_dir() / "meshes"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _file_digest(path: Path, ext: str) -> str:
    """sha256 of the file, plus the files a .gltf refers to (buffers and images beside it)."""
    f = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GrailError(f"cannot read mesh file ({exc.strerror or exc})", file=f, field="path") from None
    h = hashlib.sha256(data)
    if ext == ".gltf":
        try:
            doc = json.loads(data)
            uris = [b.get("uri") for b in doc.get("buffers", []) + doc.get("images", []) if isinstance(b, dict)]
        except (ValueError, AttributeError, TypeError):
            uris = []  # trimesh will report the broken file
        for uri in uris:
            if isinstance(uri, str) and uri and not uri.startswith("data:"):
                try:
                    h.update((path.parent / uri).read_bytes())
                except OSError:
                    h.update(b"<missing " + uri.encode() + b">")
    return h.hexdigest()


def _cache_key(path: Path, ext: str, args: dict[str, Any]) -> str:
    record = {
        "format": CACHE_FORMAT,
        "file_sha256": _file_digest(path, ext),
        "ext": ext,
        "args": args,
        "versions": {d: _version(d) for d in ("trimesh", "coacd", "manifold3d", "numpy")},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:40]


def _cache_write(key: str, asset: Asset, notes: list[str]) -> None:
    """Write ``<root>/<key>/`` (mesh.npz + record.json) into a temporary directory, then rename it
    into place, so readers never see half an entry. Failures only cost the cache (logged)."""
    root = cache_root()
    final = root / key
    tmp = root / f".{key}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.mkdir(parents=True)
        arrays = {"visual_v": np.asarray(asset.visual.vertices, float), "visual_f": np.asarray(asset.visual.faces, np.int64)}
        for i, part in enumerate(asset.collision):
            arrays[f"v{i}"] = np.asarray(part.vertices, float)
            arrays[f"f{i}"] = np.asarray(part.faces, np.int64)
        with open(tmp / "mesh.npz", "wb") as handle:
            np.savez(handle, **arrays)
        record = {
            "format": CACHE_FORMAT,
            "key": key,
            "kind": asset.kind,
            "category": asset.category,
            "parts": len(asset.collision),
            "mass": float(asset.mass),
            "com": [float(v) for v in asset.com],
            "inertia": [[float(v) for v in row] for row in np.asarray(asset.inertia)],
            "rgba": [float(c) for c in asset.rgba],
            "static": bool(asset.static),
            "params": asset.params,
            "size_warnings": list(notes),
        }
        (tmp / "record.json").write_text(json.dumps(record, indent=1))
        if final.exists():  # a damaged entry (a good one would have been read)
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except OSError as exc:
        if (final / "record.json").is_file():  # another process wrote the same entry first
            log.debug("mesh import cache entry %s written concurrently", final)
        else:
            log.warning("could not write the mesh import cache entry %s (%s)", final, exc)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _cache_read(key: str) -> tuple[Asset, list[str]] | None:
    """The cached asset and its size warnings, or None on a miss; a damaged entry is removed."""
    entry = cache_root() / key
    if not entry.is_dir():
        return None
    try:
        record = json.loads((entry / "record.json").read_text())
        if record.get("format") != CACHE_FORMAT or record.get("key") != key:
            raise ValueError("format or key mismatch")
        with np.load(entry / "mesh.npz") as data:
            visual = _cached_mesh(data["visual_v"], data["visual_f"])
            parts = [_cached_mesh(data[f"v{i}"], data[f"f{i}"]) for i in range(int(record["parts"]))]
        com = np.asarray(record["com"], float).reshape(3)
        inertia = np.asarray(record["inertia"], float).reshape(3, 3)
        mass = float(record["mass"])
        if not parts or not (math.isfinite(mass) and mass > 0) or not np.all(np.isfinite(inertia)):
            raise ValueError("implausible mass properties")
        asset = Asset(
            name="mesh",
            kind=str(record["kind"]),
            category=str(record["category"]),
            visual=visual,
            collision=parts,
            mass=mass,
            com=com,
            inertia=inertia,
            rgba=tuple(float(c) for c in record["rgba"]),
            params=dict(record["params"]),
            support_height=None,
            static=bool(record["static"]),
        )
        return asset, [str(n) for n in record.get("size_warnings", [])]
    except Exception as exc:  # anything wrong with the entry: rebuild it
        log.warning("ignoring damaged mesh import cache entry %s (%s: %s); rebuilding it",
                    entry, type(exc).__name__, exc)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def _cached_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    v = np.asarray(vertices, float)
    fc = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or fc.ndim != 2 or fc.shape[1] != 3 or len(fc) == 0:
        raise ValueError("bad mesh array shape")
    if fc.min() < 0 or fc.max() >= len(v) or not np.all(np.isfinite(v)):
        raise ValueError("bad mesh arrays")
    return trimesh.Trimesh(vertices=v, faces=fc, process=False)


# ---- repair -------------------------------------------------------------------------------


def repair(
    mesh: trimesh.Trimesh, *, file: str | None = None, bodies_out: list[trimesh.Trimesh] | None = None
) -> tuple[trimesh.Trimesh, list[str]]:
    """Make a closed, consistently outward-wound solid, or raise GrailError (field 'path').

    Steps: merge coincident vertices, drop degenerate and duplicate faces, fill every boundary
    loop (fan around its centroid), fix winding and normals, unite several bodies into one solid
    (see :func:`unite_bodies`). Returns the mesh and what was done, in words. When several bodies
    were found they are appended to ``bodies_out`` (if given).
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
        raise GrailError(f"mesh has only {len(mesh.faces)} valid faces; cannot enclose a volume", file=file, field="path")

    ext = mesh.extents
    if ext.min() <= 1e-6 * max(ext.max(), 1e-12):
        raise GrailError(f"mesh is flat (extents {np.round(ext, 6).tolist()} m): zero volume", file=file, field="path")

    if not mesh.is_watertight:
        n_holes = fill_holes(mesh)
        if n_holes:
            done.append(f"filled {n_holes} holes")
    if not mesh.is_watertight:
        n_open = _open_edge_count(mesh)
        raise GrailError(f"mesh is not watertight after repair ({n_open} open or non-manifold edges); "
                         "fix it in a modelling tool", file=file, field="path")
    if not mesh.is_winding_consistent or mesh.volume < 0:
        trimesh.repair.fix_normals(mesh, multibody=True)
        done.append("fixed winding/normals")
    if not mesh.is_winding_consistent:
        raise GrailError("mesh winding cannot be made consistent (non-orientable?)", file=file, field="path")

    bodies = mesh.split(only_watertight=False)
    if len(bodies) > 1:
        if bodies_out is not None:
            bodies_out.extend(bodies)
        mesh, how = unite_bodies(list(bodies), file=file)
        done.append(how)

    vol = float(mesh.volume)
    box_vol = float(np.prod(mesh.extents))
    if not math.isfinite(vol) or vol <= 0 or vol < 1e-6 * box_vol:
        raise GrailError(f"mesh encloses no volume ({vol:.3g} m^3)", file=file, field="path")
    return mesh, done


def unite_bodies(bodies: list[trimesh.Trimesh], *, file: str | None = None) -> tuple[trimesh.Trimesh, str]:
    """One solid from several closed bodies, so overlapping volume counts once; returns the mesh
    and a note for ``repairs`` (also logged).

    The exact union (manifold3d) is used when it is a closed mesh. Otherwise, bodies whose bounding
    boxes are pairwise disjoint are kept as separate bodies (no volume can count twice); bodies
    that may overlap raise GrailError (field 'path'), because their mass would be overcounted.
    """
    n = len(bodies)
    v_sum = float(sum(b.volume for b in bodies))
    try:
        merged = g.union(bodies)
        if merged.is_watertight and merged.is_winding_consistent and merged.volume > 0:
            how = f"united {n} bodies into one solid (volume {v_sum:.6g} -> {float(merged.volume):.6g} m^3)"
            if merged.volume < v_sum * (1.0 - 1e-6):
                log.info("%s: %s", file, how)
            return merged, how
        reason = "the union is not a closed mesh"
    except Exception as exc:  # manifold3d rejects bodies it cannot treat as manifolds
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
    lo = np.array([b.bounds[0] for b in bodies])
    hi = np.array([b.bounds[1] for b in bodies])
    overlap = np.all((lo[:, None, :] < hi[None, :, :]) & (lo[None, :, :] < hi[:, None, :]), axis=2)
    np.fill_diagonal(overlap, False)
    if not overlap.any():
        how = f"kept {n} separate bodies (could not unite them: {reason}; they do not overlap)"
        log.warning("%s: %s", file, how)
        return trimesh.util.concatenate(bodies), how
    raise GrailError(f"mesh has {n} overlapping bodies that cannot be united ({reason}), so its volume and mass "
                     "would count the overlap twice; unite them in a modelling tool", file=file, field="path")


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


def _check_size(mesh: trimesh.Trimesh, category: str, f: str, size_field: str, factor: float, strict: bool) -> list[str]:
    """Raise GrailError for an absurd size; return the warning (if any) for a mildly odd one."""
    lo, hi = SIZE_RANGES[category]
    size = float(mesh.extents.max())
    if lo <= size <= hi:
        return []
    msg = f"largest extent {size:.4g} m is outside the {category} range {lo:g}-{hi:g} m"
    if size < lo / REJECT_FACTOR or size > hi * REJECT_FACTOR:
        fits = [u for u, s in UNITS.items() if lo <= size / factor * s <= hi]
        hint = f"; unit {fits[0]!r} would fit" if fits else ""
        if strict:
            raise GrailError(f"{msg} by more than {REJECT_FACTOR:g}x (wrong {size_field}?){hint}", file=f, field=size_field)
        msg += hint
    return [f"{size_field}: {msg}"]


def _warn_size(f: str, note: str) -> None:
    log.warning("%s: %s", f, note)
    warnings.warn(f"{f}: {note}", AssetSizeWarning, stacklevel=3)


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


def convex_parts(
    mesh: trimesh.Trimesh,
    *,
    max_parts: int = MAX_PARTS,
    timeout_s: float = COACD_TIMEOUT_S,
    **settings: Any,
) -> tuple[list[trimesh.Trimesh], str, str | None]:
    """Convex collision parts: ``(parts, method, note)``.

    ``method`` is 'convex' (the mesh is convex: its hull), 'coacd' (CoACD's parts, at most
    ``max_parts``) or 'hull' (CoACD timed out after ``timeout_s`` seconds, crashed or failed: the
    single convex hull, with a logged warning). ``note`` says why the hull was used, else None.

    CoACD runs in a child process (a fresh interpreter running ``_coacd_worker.py``, not a fork:
    the parent may hold GPU/OpenMP threads that a forked child would inherit half-initialised),
    so a slow decomposition can be stopped and a crash cannot take the caller down.
    """
    if mesh.is_convex:
        return [mesh.convex_hull], "convex", None
    opts = {**COACD_SETTINGS, **settings, "max_convex_hull": int(max_parts)}
    try:
        result = _run_coacd(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int32), opts, float(timeout_s))
        parts = []
        for v in result:
            if len(v) < 4:
                continue
            hull = trimesh.convex.convex_hull(np.asarray(v, float))
            if hull.volume > 1e-12:
                parts.append(hull)
        if not parts:
            raise RuntimeError("CoACD returned no parts")
        return parts, "coacd", None
    except subprocess.TimeoutExpired:
        note = f"coacd timed out after {timeout_s:g} s; convex hull used"
    except Exception as exc:
        note = f"coacd failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); convex hull used"
    log.warning("convex decomposition: %s", note)
    return [mesh.convex_hull], "hull", note


def _run_coacd(vertices: np.ndarray, faces: np.ndarray, opts: dict, timeout_s: float) -> list[np.ndarray]:
    """CoACD in a child process; the vertices of each part. Raises subprocess.TimeoutExpired
    (the child is killed) or RuntimeError (the child failed or crashed)."""
    with tempfile.TemporaryDirectory(prefix="grail_coacd_") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, vertices=vertices, faces=faces, options=np.array(json.dumps(opts)))
        proc = subprocess.run(_coacd_command(src, dst), capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            why = err[-1] if err else f"exit status {proc.returncode}"
            raise RuntimeError(f"CoACD process failed: {why}")
        with np.load(dst) as data:
            return [np.asarray(data[f"v{i}"], float) for i in range(int(data["count"]))]


def _coacd_command(src: Path, dst: Path) -> list[str]:
    return [sys.executable, str(_WORKER), str(src), str(dst)]
