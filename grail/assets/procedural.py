"""Procedural objects, furniture and terrain with exact geometry, convex collision parts and
mass properties.

Objects/furniture: base on z=0, bounding box centred on x=y=0, free bodies.
Terrain: x is the walking direction, the walkable part starts at x=0 (ground z=0 for x<0),
centred on y=0; static, mass 0. :func:`surface_height` gives the terrain top z from the params.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import trimesh

from grail.errors import GrailError

from . import _geom as g
from .params import (
    OBJECT_CATEGORY,
    OBJECT_KINDS,
    TERRAIN_KINDS,
    resolved,
    validate_params,
)
from .types import Asset

log = logging.getLogger(__name__)

__all__ = ["make_object", "make_terrain", "surface_height", "OBJECT_KINDS", "TERRAIN_KINDS"]


# ---- objects ------------------------------------------------------------------------------


def _box_object(p):
    b = g.box([-p.size_x / 2, -p.size_y / 2, 0.0], [p.size_x / 2, p.size_y / 2, p.size_z])
    return b, [b.copy()], [b], None


def _cylinder_object(p):
    c = g.cylinder(p.radius, 0.0, p.height, p.sections)
    return c, [c.copy()], [c], None


def _bottle_object(p):
    z_sh = p.body_height
    z_neck = p.body_height + p.shoulder_height
    z_top = z_neck + p.neck_height
    profile = [(0.0, 0.0), (p.radius, 0.0), (p.radius, z_sh), (p.neck_radius, z_neck), (p.neck_radius, z_top), (0.0, z_top)]
    visual = g.revolve_rz(profile, p.sections)
    v = visual.vertices
    eps = 1e-6
    body = trimesh.convex.convex_hull(v[v[:, 2] <= z_neck + eps])
    neck = trimesh.convex.convex_hull(v[v[:, 2] >= z_neck - eps])
    return visual, [body, neck], [body, neck], None


def _mug_object(p):
    R, H, w = p.radius, p.height, p.wall
    r_in = R - w
    outer = g.cylinder(R, 0.0, H, p.sections)
    inner = g.cylinder(r_in, p.bottom, H + 0.01, p.sections)
    shell = g.to_manifold(outer) - g.to_manifold(inner)
    # Handle: half torus in the x-z plane on the +x side, its ends buried in the wall.
    torus = trimesh.creation.torus(p.handle_radius, p.handle_thickness / 2, major_sections=32, minor_sections=12)
    torus.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]))
    torus.apply_translation([R, 0.0, H / 2])
    span = p.handle_radius + p.handle_thickness
    clip = g.box([R - w / 2, -span, H / 2 - span], [R + span, span, H / 2 + span])
    handle_man = g.to_manifold(torus) ^ g.to_manifold(clip)
    handle = g.to_trimesh(handle_man)
    visual = g.to_trimesh(shell + handle_man)

    parts = [g.cylinder(R, 0.0, p.bottom, p.sections)]
    n = p.wall_parts
    for k in range(n):
        a = np.linspace(2 * math.pi * k / n, 2 * math.pi * (k + 1) / n, 5)
        ring = np.concatenate([np.c_[R * np.cos(a), R * np.sin(a)], np.c_[r_in * np.cos(a), r_in * np.sin(a)]])
        pts = np.concatenate([np.c_[ring, np.full(len(ring), p.bottom)], np.c_[ring, np.full(len(ring), H)]])
        parts.append(trimesh.convex.convex_hull(pts))
    parts.append(handle.convex_hull)  # the handle: its own convex part, always the last one
    return visual, parts, None, None


def _ball_object(p):
    s = trimesh.creation.icosphere(subdivisions=p.subdivisions, radius=p.radius)
    s.apply_translation([0, 0, p.radius])
    return s, [s.copy()], [s], None


def _legs(sx, sy, leg, inset, z_top):
    out = []
    for sxn in (-1, 1):
        for syn in (-1, 1):
            cx = sxn * (sx / 2 - inset - leg / 2)
            cy = syn * (sy / 2 - inset - leg / 2)
            out.append(g.box([cx - leg / 2, cy - leg / 2, 0.0], [cx + leg / 2, cy + leg / 2, z_top]))
    return out


def _stool_object(p):
    top = g.box([-p.top_x / 2, -p.top_y / 2, p.height - p.thickness], [p.top_x / 2, p.top_y / 2, p.height])
    pieces = [top, *_legs(p.top_x, p.top_y, p.leg, p.inset, p.height - p.thickness)]
    return g.union(pieces), pieces, pieces, p.height


def _chair_object(p):
    h, t = p.seat_height, p.thickness
    seat = g.box([-p.seat_x / 2, -p.seat_y / 2, h - t], [p.seat_x / 2, p.seat_y / 2, h])
    back = g.box([-p.seat_x / 2, -p.seat_y / 2, h], [-p.seat_x / 2 + p.back_thickness, p.seat_y / 2, h + p.back_height])
    pieces = [seat, back, *_legs(p.seat_x, p.seat_y, p.leg, p.inset, h - t)]
    return g.union(pieces), pieces, pieces, h


def _table_object(p):
    top = g.box([-p.top_x / 2, -p.top_y / 2, p.height - p.thickness], [p.top_x / 2, p.top_y / 2, p.height])
    pieces = [top, *_legs(p.top_x, p.top_y, p.leg, p.inset, p.height - p.thickness)]
    return g.union(pieces), pieces, pieces, p.height


_BUILDERS = {
    "box": _box_object,
    "cylinder": _cylinder_object,
    "bottle": _bottle_object,
    "mug": _mug_object,
    "ball": _ball_object,
    "stool": _stool_object,
    "chair": _chair_object,
    "table": _table_object,
}


def make_object(kind: str, params: dict | None = None, name: str | None = None) -> Asset:
    """Build a procedural object or piece of furniture.

    ``params`` are validated against ``OBJECT_KINDS[kind]``: unknown keys and out-of-range values
    raise GrailError whose field is the parameter's name (e.g. ``size_x``) and whose message starts
    with the kind. Mass comes from ``density`` times the volume of the visual solid, or from
    ``mass`` when given (then the effective density is recorded). Inertia is the exact solid's
    inertia about its centre of mass.
    """
    model = validate_params(kind, params, OBJECT_KINDS, "object")
    visual, collision, exact_pieces, support = _BUILDERS[kind](model)
    if not visual.is_watertight or visual.volume <= 0:
        raise GrailError(f"{kind}: the generated mesh is not a closed solid (parameters too extreme?)", field=None)
    off = g.recentre_offset(visual)
    visual.apply_translation(off)
    collision = [c.convex_hull for c in collision]
    for c in collision:
        c.apply_translation(off)
    if support is not None:
        support = float(support + off[2])

    volume = float(visual.volume)
    density = float(model.mass / volume) if model.mass is not None else float(model.density)
    mass, com, inertia = g.mass_properties(visual, density)
    if exact_pieces is not None:
        _crosscheck(kind, [p.copy().apply_translation(off) for p in exact_pieces], density, mass, com, inertia)

    rp = resolved(model)
    rp["density"] = density
    rp["mass"] = mass
    return Asset(
        name=name or kind,
        kind=kind,
        category=OBJECT_CATEGORY[kind],
        visual=visual,
        collision=collision,
        mass=mass,
        com=com,
        inertia=inertia,
        rgba=tuple(float(c) for c in model.rgba),
        params=rp,
        support_height=support,
        static=False,
    )


def _crosscheck(kind: str, pieces: list[trimesh.Trimesh], density: float, mass: float, com: np.ndarray,
                inertia: np.ndarray, tol: float = 1e-3) -> None:
    """Union mass properties vs the sum over its disjoint pieces (parallel-axis theorem).

    An internal consistency check of the builders: a mismatch is a bug, so it raises.
    """
    m2, c2, i2 = g.combine_mass([g.mass_properties(p, density) for p in pieces])
    scale = max(np.abs(inertia).max(), 1e-12)
    errors = []
    if abs(m2 - mass) > tol * mass:
        errors.append(f"mass {mass:.9g} vs {m2:.9g} kg")
    if np.linalg.norm(c2 - com) > 1e-5:
        errors.append(f"com {np.round(com, 6).tolist()} vs {np.round(c2, 6).tolist()} m")
    if np.abs(i2 - inertia).max() > tol * scale:
        errors.append(f"inertia differs by {np.abs(i2 - inertia).max():.3g} kg m^2 (scale {scale:.3g})")
    if errors:
        raise RuntimeError(f"{kind}: mass properties of the solid disagree with the sum of its pieces: "
                           + "; ".join(errors))


# ---- terrain ------------------------------------------------------------------------------


def _stairs_up(p):
    n, rise, run, w = p.steps, p.rise, p.run, p.width
    pts = [(0.0, 0.0)]
    parts = []
    for i in range(n - 1):
        pts += [(i * run, (i + 1) * rise), ((i + 1) * run, (i + 1) * rise)]
        parts.append(g.box([i * run, -w / 2, 0.0], [(i + 1) * run, w / 2, (i + 1) * rise]))
    x0 = (n - 1) * run
    end = x0 + p.landing
    pts += [(x0, n * rise), (end, n * rise), (end, 0.0)]
    parts.append(g.box([x0, -w / 2, 0.0], [end, w / 2, n * rise]))
    return g.prism_xz(pts, w), parts, n * rise


def _stairs_down(p):
    n, rise, run, w, L = p.steps, p.rise, p.run, p.width, p.landing
    top = n * rise
    pts = [(0.0, 0.0), (0.0, top), (L, top)]
    parts = [g.box([0.0, -w / 2, 0.0], [L, w / 2, top])]
    for j in range(1, n):
        x0, x1, z = L + (j - 1) * run, L + j * run, (n - j) * rise
        pts += [(x0, z), (x1, z)]
        parts.append(g.box([x0, -w / 2, 0.0], [x1, w / 2, z]))
    pts.append((L + (n - 1) * run, 0.0))
    return g.prism_xz(pts, w), parts, top


def _curb(p):
    b = g.box([0.0, -p.width / 2, 0.0], [p.depth, p.width / 2, p.height])
    return b, [b.copy()], p.height


def _slope(p):
    h = p.length * math.tan(math.radians(p.angle_deg))
    pts = [(0.0, 0.0), (p.length, h)]
    if p.landing > 0:
        pts.append((p.length + p.landing, h))
    pts.append((p.length + p.landing, 0.0))
    v = g.prism_xz(pts, p.width)
    return v, [v.copy()], h


_TERRAIN_BUILDERS = {"stairs_up": _stairs_up, "stairs_down": _stairs_down, "curb": _curb, "slope": _slope}


def make_terrain(kind: str, params: dict | None = None, name: str | None = None) -> Asset:
    """Build a static terrain piece (see the module docstring for its frame).

    - ``stairs_up``: ``steps`` risers of ``rise`` going up along +x, treads of ``run``, the last
      riser (at x=(steps-1)*run) leads onto a top landing of length ``landing``.
    - ``stairs_down``: a top landing x in [0, landing] at steps*rise, then ``steps`` risers down,
      treads of ``run``; ground after x = landing + (steps-1)*run.
    - ``curb``: a block ``depth`` long (x), ``height`` high.
    - ``slope``: an incline of ``angle_deg`` over horizontal ``length``, then a flat ``landing``.

    ``support_height`` is the height of the top surface. Collision: one convex block per step.
    """
    model = validate_params(kind, params, TERRAIN_KINDS, "terrain")
    visual, parts, top = _TERRAIN_BUILDERS[kind](model)
    if not visual.is_watertight or visual.volume <= 0:
        raise GrailError(f"{kind}: the generated terrain is not a closed solid (parameters too extreme?)", field=None)
    return Asset(
        name=name or kind,
        kind=kind,
        category="terrain",
        visual=visual,
        collision=[c.convex_hull for c in parts],
        mass=0.0,
        com=np.asarray(visual.center_mass, dtype=float),
        inertia=np.zeros((3, 3)),
        rgba=tuple(float(c) for c in model.rgba),
        params=resolved(model),
        support_height=float(top),
        static=True,
    )


def surface_height(asset: Asset, xy: np.ndarray) -> np.ndarray:
    """Terrain top z at local (x, y) points, shape (..., 2) -> (...); 0 outside the terrain.

    Computed from ``asset.params`` (not by ray casting), so it is exact at step edges: treads
    are half-open intervals [x0, x1), the far end of a landing is included.
    """
    if asset.kind not in TERRAIN_KINDS:
        raise GrailError(f"surface_height needs a terrain asset, got kind {asset.kind!r}", field="kind")
    p = TERRAIN_KINDS[asset.kind].model_validate(asset.params)
    xy = np.asarray(xy, dtype=float)
    if xy.shape[-1] != 2:
        raise GrailError(f"xy must have shape (..., 2), got {xy.shape}", field="xy")
    x, y = xy[..., 0], xy[..., 1]
    z = np.zeros(x.shape)
    inside_y = np.abs(y) <= p.width / 2
    k = asset.kind
    if k == "stairs_up":
        x_land = (p.steps - 1) * p.run
        treads = (x >= 0) & (x < x_land)
        z = np.where(treads, (np.floor(x / p.run) + 1) * p.rise, z)
        z = np.where((x >= x_land) & (x <= x_land + p.landing), p.steps * p.rise, z)
    elif k == "stairs_down":
        top = p.steps * p.rise
        end = p.landing + (p.steps - 1) * p.run
        z = np.where((x >= 0) & (x <= p.landing), top, z)
        down = (x > p.landing) & (x < end)
        idx = np.floor((x - p.landing) / p.run)
        z = np.where(down, (p.steps - 1 - idx) * p.rise, z)
    elif k == "curb":
        z = np.where((x >= 0) & (x <= p.depth), p.height, z)
    elif k == "slope":
        t = math.tan(math.radians(p.angle_deg))
        z = np.where((x >= 0) & (x <= p.length), x * t, z)
        z = np.where((x > p.length) & (x <= p.length + p.landing), p.length * t, z)
    return np.where(inside_y, z, 0.0)
