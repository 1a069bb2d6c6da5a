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
from grail.scene.spec import Choice, ItemSpec, PlacementSpec, SceneTemplate, TerrainSpec, VariantSpec

DROP_HEIGHT_M = 0.01  # settling starts this far above the support
CLEARANCE_M = 0.05  # minimum planar gap between the character, furniture and floor objects
CHARACTER_RADIUS_M = 0.22  # planar half-size of a standing child of 1.32 m (shoulder span ~0.33 m)
STREAMS = {"layout": 1, "assets": 2, "character": 3, "camera": 4, "lighting": 5}


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


def pick_variant(variants: list[VariantSpec], rng: np.random.Generator) -> VariantSpec:
    weights = np.array([v.weight for v in variants], float)
    return variants[int(rng.choice(len(variants), p=weights / weights.sum()))]


def yaw_quat(yaw_rad: float) -> np.ndarray:
    return np.array([math.cos(yaw_rad / 2), 0.0, 0.0, math.sin(yaw_rad / 2)])


def transform(pos: np.ndarray, yaw_rad: float) -> np.ndarray:
    T = np.eye(4)
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:3, 3] = pos
    return T


@dataclass
class Placed:
    """An asset with its pre-settling world placement."""

    spec_name: str
    role: str  # furniture | object | terrain
    asset: Asset
    variant: VariantSpec | None
    T_world: np.ndarray  # (4,4) asset frame in the world, before settling
    yaw: float
    support: str | None
    source: str | None = None

    def world_vertices(self, max_points: int = 4000) -> np.ndarray:
        v = np.asarray(self.asset.visual.vertices, float)
        if len(v) > max_points:
            v = v[:: int(math.ceil(len(v) / max_points))]
        return v @ self.T_world[:3, :3].T + self.T_world[:3, 3]

    def footprint(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.world_vertices()
        return v[:, :2].min(axis=0), v[:, :2].max(axis=0)


def build_asset(variant: VariantSpec, params: dict[str, Any], name: str, template_path: Path, field: str) -> tuple[Asset, str | None]:
    """A procedural asset or an imported user mesh (paths relative to the template file)."""
    from grail.assets.mesh_import import import_mesh
    from grail.assets.procedural import OBJECT_KINDS, make_object

    if variant.kind == "mesh":
        path = Path(variant.path)
        if not path.is_absolute():
            path = (template_path.parent / path).resolve()
        asset = import_mesh(path, category=variant.category, unit=variant.unit, scale=variant.scale, density=variant.density, name=name)
        return asset, str(variant.path)
    if variant.kind not in OBJECT_KINDS:
        raise GrailError(f"unknown asset kind '{variant.kind}' (known: {', '.join(sorted(OBJECT_KINDS))}, mesh)", file=template_path, field=field)
    try:
        return make_object(variant.kind, params, name=name), None
    except GrailError as err:
        raise GrailError(err.reason, file=template_path, field=f"{field}.params{'.' + err.field if err.field else ''}") from None


def build_terrain(spec: TerrainSpec, params: dict[str, Any], template_path: Path, field: str) -> Asset:
    from grail.assets.procedural import TERRAIN_KINDS, make_terrain

    if spec.kind not in TERRAIN_KINDS:
        raise GrailError(f"unknown terrain kind '{spec.kind}' (known: {', '.join(sorted(TERRAIN_KINDS))})", file=template_path, field=f"{field}.kind")
    try:
        return make_terrain(spec.kind, params, name=spec.name)
    except GrailError as err:
        raise GrailError(err.reason, file=template_path, field=f"{field}.params{'.' + err.field if err.field else ''}") from None


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


def make_assets(template: SceneTemplate, template_path: Path, seed: int) -> list[tuple[str, str, Asset, VariantSpec | None, str | None]]:
    """Choose variants and parameters and build every asset once (placements are retried)."""
    rng = rng_for(seed, "assets")
    out = []
    for t_index, terrain in enumerate(template.terrain):
        field = f"terrain[{t_index}]"
        out.append((terrain.name, "terrain", build_terrain(terrain, sample_params(terrain.params, rng), template_path, field), None, None))
    for role, items in (("furniture", template.furniture), ("object", template.objects)):
        for index, item in enumerate(items):
            field = f"{'furniture' if role == 'furniture' else 'objects'}[{index}]"
            variant = pick_variant(item.variants, rng)
            v_index = item.variants.index(variant)
            params = sample_params(variant.params, rng)
            asset, source = build_asset(variant, params, item.name, template_path, f"{field}.variants[{v_index}]")
            out.append((item.name, role, asset, variant, source))
    return out


def place(template: SceneTemplate, template_path: Path, seed: int, assets: list, max_tries: int = 100) -> Layout:
    """Draw planar placements until nothing overlaps and supported items fit on their support."""
    rng = rng_for(seed, "layout")
    items: dict[str, ItemSpec | TerrainSpec] = {i.name: i for i in template.furniture + template.objects}
    items.update({t.name: t for t in template.terrain})
    problems: dict[str, int] = {}
    for _ in range(max_tries):
        placed: dict[str, Placed] = {}
        for name, role, asset, variant, source in assets:  # supports come before what they carry
            spec = items[name]
            x, y, yaw = _planar(spec.placement, rng)
            support = getattr(spec, "support", None)
            if support is None:
                z = 0.0 if role == "terrain" else DROP_HEIGHT_M
                T = transform(np.array([x, y, z]), yaw)
            else:
                base = placed[support]
                top = base.asset.support_height
                if top is None:
                    raise GrailError(f"'{support}' has no top surface to carry '{name}'", file=template_path, field=f"{name}.support")
                T = base.T_world @ transform(np.array([x, y, top + DROP_HEIGHT_M]), yaw)
            placed[name] = Placed(name, role, asset, variant, T, yaw + (placed[support].yaw if support else 0.0), support, source)
        cx, cy, cyaw = _planar(template.character.placement, rng)
        char_T = transform(np.array([cx, cy, _ground_height(list(placed.values()), cx, cy)]), cyaw)
        problem = _layout_problem(list(placed.values()), char_T)
        if problem is None:
            return Layout(list(placed.values()), char_T, cyaw)
        problems[problem] = problems.get(problem, 0) + 1
    tally = ", ".join(f"{k} ({v})" for k, v in problems.items())
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
    c = char_T[:2, 3]
    char_box = (c - CHARACTER_RADIUS_M, c + CHARACTER_RADIUS_M)
    grounded = [p for p in placed if p.role != "terrain" and p.support is None]
    for i, p in enumerate(grounded):
        box = p.footprint()
        if _overlap(box, char_box, CLEARANCE_M):
            return f"character overlaps {p.spec_name}"
        for q in grounded[i + 1 :]:
            if _overlap(box, q.footprint(), CLEARANCE_M):
                return f"{p.spec_name} overlaps {q.spec_name}"
        for t in placed:
            if t.role == "terrain" and _overlap(box, t.footprint(), 0.0):
                return f"{p.spec_name} stands on terrain {t.spec_name}"
    for p in placed:
        if p.support is None:
            continue
        base = next(b for b in placed if b.spec_name == p.support)
        world = p.world_vertices()
        local = np.linalg.inv(base.T_world) @ np.c_[world, np.ones(len(world))].T
        lo, hi = base.asset.visual.bounds[0, :2], base.asset.visual.bounds[1, :2]
        if np.any(local[:2].min(axis=1) < lo + 0.01) or np.any(local[:2].max(axis=1) > hi - 0.01):
            return f"{p.spec_name} overhangs {p.support}"
    return None
