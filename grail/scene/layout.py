"""Sample a template into concrete assets and planar placements (before physics settling).

Each concern draws from its own random stream derived from the seed, so that, for example,
retrying the camera never changes the furniture layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grail.assets.types import Asset
from grail.errors import GrailError
from grail.rotations import yaw_quat
from grail.scene.spec import Choice, PlacementSpec, SceneTemplate, TerrainSpec, VariantSpec

DROP_HEIGHT_M = 0.01  # settling starts this far above the support
CLEARANCE_M = 0.05  # minimum planar gap between the character, furniture and floor objects
SHARED_SUPPORT_CLEARANCE_M = 0.02  # between objects standing on the same support
CHARACTER_RADIUS_M = 0.22  # planar half-size of a standing child of 1.32 m (shoulder span ~0.33 m)
STREAMS = {"layout": 1, "assets": 2, "character": 3, "camera": 4, "lighting": 5}

__all__ = ["BuiltAsset", "Layout", "Placed", "make_assets", "place", "rng_for", "sample_value", "subsample", "yaw_quat"]


def rng_for(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), STREAMS[stream]])


def sample_value(spec: Any, rng: np.random.Generator) -> Any:
    if isinstance(spec, Choice):
        return spec.choice[int(rng.integers(len(spec.choice)))]
    if isinstance(spec, tuple):
        lo, hi = float(spec[0]), float(spec[1])
        return lo if lo == hi else float(rng.uniform(lo, hi))
    return spec


def sample_params(params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    return {key: sample_value(value, rng) for key, value in sorted(params.items())}


def pick_variant(variants: list[VariantSpec], rng: np.random.Generator) -> tuple[int, VariantSpec]:
    weights = np.array([v.weight for v in variants], float)
    index = int(rng.choice(len(variants), p=weights / weights.sum()))
    return index, variants[index]


def subsample(points: np.ndarray, max_points: int) -> np.ndarray:
    """Every k-th point so that at most `max_points` remain (deterministic)."""
    points = np.asarray(points, float)
    return points[:: max(1, math.ceil(len(points) / max_points))]


def transform(pos: np.ndarray, yaw_rad: float) -> np.ndarray:
    T = np.eye(4)
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = pos
    return T


@dataclass(frozen=True)
class BuiltAsset:
    """An asset made from the template's chosen variant and sampled parameters."""

    name: str
    role: str  # terrain | furniture | object
    asset: Asset
    source: str | None = None  # user mesh path as written in the template
    scale: float = 1.0  # metres per mesh-file unit (user meshes)


@dataclass
class Placed:
    """An asset with its pre-settling world placement."""

    built: BuiltAsset
    T_world: np.ndarray  # (4,4) asset frame in the world, before settling
    yaw: float
    support: str | None

    @property
    def spec_name(self) -> str:
        return self.built.name

    @property
    def role(self) -> str:
        return self.built.role

    @property
    def asset(self) -> Asset:
        return self.built.asset

    def world_vertices(self, max_points: int = 4000) -> np.ndarray:
        v = subsample(self.asset.visual.vertices, max_points)
        return v @ self.T_world[:3, :3].T + self.T_world[:3, 3]

    def footprint(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.world_vertices()
        return v[:, :2].min(axis=0), v[:, :2].max(axis=0)


def _wrap(err: GrailError, template_path: Path, field: str) -> GrailError:
    """Re-home an asset error under the template field that caused it."""
    if err.file is not None and Path(err.file) != template_path:
        reason = f"{err.file}: {err.reason}"  # a user mesh: name it in the message
    else:
        reason = err.reason
    return GrailError(reason, file=template_path, field=f"{field}.{err.field}" if err.field else field)


def build_asset(variant: VariantSpec, params: dict[str, Any], name: str, template_path: Path, field: str) -> tuple[Asset, str | None, float]:
    """A procedural asset or an imported user mesh (paths relative to the template file)."""
    from grail.assets.mesh_import import UNITS, import_mesh
    from grail.assets.procedural import OBJECT_KINDS, make_object

    try:
        if variant.kind == "mesh":
            path = Path(variant.path)
            if not path.is_absolute():
                path = (template_path.parent / path).resolve()
            asset = import_mesh(path, category=variant.category, unit=variant.unit, scale=variant.scale, density=variant.density, name=name)
            return asset, str(variant.path), float(variant.scale or UNITS[variant.unit])
        if variant.kind not in OBJECT_KINDS:
            raise GrailError(f"unknown asset kind '{variant.kind}' (known: {', '.join(sorted(OBJECT_KINDS))}, mesh)", field="kind")
        return make_object(variant.kind, params, name=name), None, 1.0
    except GrailError as err:
        prefix = field if variant.kind == "mesh" or err.field == "kind" else f"{field}.params"
        raise _wrap(err, template_path, prefix) from None


def build_terrain(spec: TerrainSpec, params: dict[str, Any], template_path: Path, field: str) -> Asset:
    from grail.assets.procedural import TERRAIN_KINDS, make_terrain

    if spec.kind not in TERRAIN_KINDS:
        raise GrailError(f"unknown terrain kind '{spec.kind}' (known: {', '.join(sorted(TERRAIN_KINDS))})", file=template_path, field=f"{field}.kind")
    try:
        return make_terrain(spec.kind, params, name=spec.name)
    except GrailError as err:
        raise _wrap(err, template_path, f"{field}.params") from None


def _planar(placement: PlacementSpec, rng: np.random.Generator) -> tuple[float, float, float]:
    return (
        float(sample_value(placement.x, rng)),
        float(sample_value(placement.y, rng)),
        math.radians(float(sample_value(placement.yaw_deg, rng))),
    )


@dataclass
class Layout:
    placed: list[Placed]
    character_T: np.ndarray  # (4,4) character root (feet centre on the ground, facing +x)
    character_yaw: float

    def by_name(self, name: str) -> Placed:
        return next(p for p in self.placed if p.spec_name == name)


def make_assets(template: SceneTemplate, template_path: Path, seed: int) -> list[BuiltAsset]:
    """Choose variants and parameters and build every asset once (placements are retried)."""
    rng = rng_for(seed, "assets")
    out = []
    for t_index, terrain in enumerate(template.terrain):
        asset = build_terrain(terrain, sample_params(terrain.params, rng), template_path, f"terrain[{t_index}]")
        out.append(BuiltAsset(terrain.name, "terrain", asset))
    for role, group, items in (("furniture", "furniture", template.furniture), ("object", "objects", template.objects)):
        for index, item in enumerate(items):
            v_index, variant = pick_variant(item.variants, rng)
            params = sample_params(variant.params, rng)
            asset, source, scale = build_asset(variant, params, item.name, template_path, f"{group}[{index}].variants[{v_index}]")
            out.append(BuiltAsset(item.name, role, asset, source, scale))
    return out


def place(template: SceneTemplate, template_path: Path, seed: int, assets: list[BuiltAsset], max_tries: int = 100) -> Layout:
    """Draw planar placements until nothing overlaps and supported items fit on their support."""
    rng = rng_for(seed, "layout")
    specs = {i.name: i for i in [*template.terrain, *template.furniture, *template.objects]}
    fields = template.field_paths()
    problems: dict[str, int] = {}
    for _ in range(max_tries):
        placed: dict[str, Placed] = {}
        for built in assets:  # supports are built (and so placed) before what they carry
            spec = specs[built.name]
            x, y, yaw = _planar(spec.placement, rng)
            support = getattr(spec, "support", None)
            if support is None:
                z = 0.0 if built.role == "terrain" else DROP_HEIGHT_M
                placed[built.name] = Placed(built, transform(np.array([x, y, z]), yaw), yaw, None)
                continue
            base = placed[support]
            top = base.asset.support_height
            if top is None:
                raise GrailError(f"'{support}' has no top surface to carry '{built.name}'", file=template_path, field=f"{fields[built.name]}.support")
            T = base.T_world @ transform(np.array([x, y, top + DROP_HEIGHT_M]), yaw)
            placed[built.name] = Placed(built, T, yaw + base.yaw, support)
        cx, cy, cyaw = _planar(template.character.placement, rng)
        char_T = transform(np.array([cx, cy, _ground_height(list(placed.values()), cx, cy)]), cyaw)
        problem = _layout_problem(list(placed.values()), char_T)
        if problem is None:
            return Layout(list(placed.values()), char_T, cyaw)
        problems[problem] = problems.get(problem, 0) + 1
    tally = ", ".join(f"{k} ({v})" for k, v in sorted(problems.items(), key=lambda kv: -kv[1]))
    raise GrailError(f"no valid layout in {max_tries} tries: {tally}", file=template_path, field="placement")


def _ground_height(placed: list[Placed], x: float, y: float) -> float:
    """Top of the terrain under a world point (0 on the bare floor)."""
    from grail.assets.procedural import surface_height

    z = 0.0
    for p in placed:
        if p.role != "terrain":
            continue
        local = np.linalg.inv(p.T_world) @ np.array([x, y, 0.0, 1.0])
        z = max(z, float(surface_height(p.asset, local[None, :2])[0]) + float(p.T_world[2, 3]))
    return z


def _overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], gap: float) -> bool:
    return bool(np.all(a[0] - gap < b[1]) and np.all(b[0] - gap < a[1]))


def _layout_problem(placed: list[Placed], char_T: np.ndarray) -> str | None:
    """The first reason this layout is unusable, or None."""
    c = char_T[:2, 3]
    char_box = (c - CHARACTER_RADIUS_M, c + CHARACTER_RADIUS_M)
    grounded = [p for p in placed if p.role != "terrain" and p.support is None]
    boxes = {p.spec_name: p.footprint() for p in placed}
    for i, p in enumerate(grounded):
        box = boxes[p.spec_name]
        if _overlap(box, char_box, CLEARANCE_M):
            return f"character overlaps {p.spec_name}"
        for q in grounded[i + 1 :]:
            if _overlap(box, boxes[q.spec_name], CLEARANCE_M):
                return f"{p.spec_name} overlaps {q.spec_name}"
        for t in placed:
            if t.role == "terrain" and _overlap(box, boxes[t.spec_name], 0.0):
                return f"{p.spec_name} stands on terrain {t.spec_name}"
    carried = [p for p in placed if p.support is not None]
    for i, p in enumerate(carried):
        for q in carried[i + 1 :]:
            if q.support == p.support and _overlap(boxes[p.spec_name], boxes[q.spec_name], SHARED_SUPPORT_CLEARANCE_M):
                return f"{p.spec_name} overlaps {q.spec_name} on {p.support}"
        base = next(b for b in placed if b.spec_name == p.support)
        world = p.world_vertices()
        local = np.linalg.inv(base.T_world) @ np.c_[world, np.ones(len(world))].T
        lo, hi = base.asset.visual.bounds[0, :2], base.asset.visual.bounds[1, :2]
        if np.any(local[:2].min(axis=1) < lo + 0.01) or np.any(local[:2].max(axis=1) > hi - 0.01):
            return f"{p.spec_name} overhangs {p.support}"
    return None
