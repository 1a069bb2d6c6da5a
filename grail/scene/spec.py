"""Scene templates (YAML with ranges and choices) and the resolved scene they sample into.

A template states *ranges*; `grail compose` samples one concrete scene per seed. Both are
strict pydantic models: an unknown key, a wrong type or an out-of-bounds value is an error
naming the file and the field, never silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from grail.errors import GrailError

# A sampled number: a constant or an inclusive [low, high] range drawn uniformly. Strict types:
# YAML's `true` is not the number 1.
Scalar = Union[StrictFloat, StrictInt]
RangeSpec = Union[Scalar, tuple[Scalar, Scalar]]

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
KIND_WORDS = {
    "cylinder": "can",
    "mesh": "object",
    "imported": "object",
    "stairs_up": "stairs",
    "stairs_down": "stairs",
    "slope": "ramp",
}
# Names the scene builder uses itself: items may not take them.
RESERVED_NAMES = {"floor", "sun", "scene_cam", "world"}
RESERVED_PREFIX = "char_"  # the character's bodies and skins


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Choice(Strict):
    """One value picked uniformly from a list."""

    choice: list[Union[Scalar, StrictStr]] = Field(min_length=1)


ParamSpec = Union[RangeSpec, StrictStr, Choice]


def _values(spec: Any) -> list[float]:
    return [float(v) for v in (spec if isinstance(spec, tuple) else (spec,))]


def bounded(low: float | None = None, high: float | None = None, *, open_low: bool = False):
    """A field validator: a range's low <= high, and every end within [low, high]."""

    def check(value: Any) -> Any:
        if isinstance(value, tuple) and value[0] > value[1]:
            raise ValueError(f"range low {value[0]} is above high {value[1]}")
        for v in _values(value):
            if low is not None and (v <= low if open_low else v < low):
                raise ValueError(f"{v} must be {'above' if open_low else 'at least'} {low}")
            if high is not None and v > high:
                raise ValueError(f"{v} must be at most {high}")
        return value

    return check


class PlacementSpec(Strict):
    """Planar placement: on the floor in world coordinates, or relative to the top centre of a
    support (`support:`) in the support's frame."""

    x: RangeSpec = 0.0
    y: RangeSpec = 0.0
    yaw_deg: RangeSpec = 0.0

    _position = field_validator("x", "y")(bounded(-50.0, 50.0))
    _yaw = field_validator("yaw_deg")(bounded(-720.0, 720.0))


class VariantSpec(Strict):
    """One way to realise an item: a procedural kind with parameter ranges, or a user mesh."""

    kind: str
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    # Only for kind "mesh": a user file, its unit or scale, its size category and density.
    path: str | None = None
    unit: Literal["m", "cm", "mm", "in"] | None = None
    scale: float | None = Field(default=None, gt=0)
    category: Literal["tabletop", "floor", "furniture"] | None = None
    density: float = Field(default=500.0, gt=0)

    @model_validator(mode="after")
    def _mesh_fields(self) -> "VariantSpec":
        mesh_only = {"path": self.path, "unit": self.unit, "scale": self.scale, "category": self.category}
        if self.kind == "mesh":
            if not self.path:
                raise ValueError("kind 'mesh' needs 'path'")
            if (self.unit is None) == (self.scale is None):
                raise ValueError("kind 'mesh' needs exactly one of 'unit' or 'scale'")
            if self.category is None:
                raise ValueError("kind 'mesh' needs 'category'")
        else:
            given = [k for k, v in mesh_only.items() if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to kind 'mesh'")
        return self


def _check_name(name: str) -> str:
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIX):
        raise ValueError(f"'{name}' is reserved (floor, sun, scene_cam, world, char_*)")
    return name


class ItemSpec(Strict):
    """A furniture piece or a manipulable object."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    variants: list[VariantSpec] = Field(min_length=1)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    support: str | None = None  # name of an earlier furniture item whose top carries this one

    _name = field_validator("name")(_check_name)


class TerrainSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)
    kind: str
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)

    _name = field_validator("name")(_check_name)


RGB = tuple[float, float, float]


class ClothingSpec(Strict):
    """Colour choices per garment; each entry is a non-empty list of RGB triples (0-1)."""

    shirt: list[RGB] = Field(
        default_factory=lambda: [(0.80, 0.20, 0.20), (0.20, 0.45, 0.80), (0.95, 0.75, 0.20), (0.25, 0.60, 0.35)], min_length=1
    )
    trousers: list[RGB] = Field(default_factory=lambda: [(0.15, 0.20, 0.35), (0.30, 0.30, 0.32), (0.45, 0.35, 0.25)], min_length=1)
    shoes: list[RGB] = Field(default_factory=lambda: [(0.95, 0.95, 0.95), (0.10, 0.10, 0.10)], min_length=1)
    hair: list[RGB] = Field(default_factory=lambda: [(0.20, 0.13, 0.08), (0.08, 0.06, 0.05), (0.55, 0.40, 0.20)], min_length=1)
    skin: list[RGB] = Field(default_factory=lambda: [(0.96, 0.80, 0.69), (0.78, 0.57, 0.44), (0.55, 0.38, 0.28)], min_length=1)

    @field_validator("shirt", "trousers", "shoes", "hair", "skin")
    @classmethod
    def _unit_interval(cls, colours: list[RGB]) -> list[RGB]:
        for rgb in colours:
            if not all(0.0 <= c <= 1.0 for c in rgb):
                raise ValueError(f"colour {list(rgb)} has a channel outside [0, 1]")
        return colours


class CharacterSpec(Strict):
    model: Literal["anny", "smplx"] = "anny"
    model_path: str | None = None  # SMPL-X model file (user supplied)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    clothing: ClothingSpec = Field(default_factory=ClothingSpec)


class CameraSpec(Strict):
    """Camera sampling ranges and the constraints a sampled camera must satisfy.

    azimuth_deg is the direction from the look-at point to the camera, from +x towards +y;
    distance is the 3D distance to the look-at point; height is the camera's z."""

    fov_deg: RangeSpec = (45.0, 65.0)  # vertical
    distance: RangeSpec = (2.5, 4.0)
    height: RangeSpec = (1.0, 1.6)
    azimuth_deg: RangeSpec = (-110.0, -70.0)
    look_at_jitter: float = Field(default=0.1, ge=0, le=2.0)
    margin_px: int = Field(default=8, ge=0, le=200)  # at 1280 px wide; scaled with the width
    min_object_visibility: float = Field(default=0.9, ge=0, le=1)
    min_object_pixels: int = Field(default=4, ge=1)  # at the visibility-check resolution (<= 256 px wide)
    max_tries: int = Field(default=200, ge=1, le=10000)

    _fov = field_validator("fov_deg")(bounded(1.0, 170.0))
    _distance = field_validator("distance")(bounded(0.0, 100.0, open_low=True))
    _height = field_validator("height")(bounded(-10.0, 100.0))
    _azimuth = field_validator("azimuth_deg")(bounded(-720.0, 720.0))


class LightingSpec(Strict):
    azimuth_deg: RangeSpec = (0.0, 360.0)
    elevation_deg: RangeSpec = (45.0, 75.0)
    intensity: RangeSpec = (0.6, 0.8)

    _azimuth = field_validator("azimuth_deg")(bounded(-720.0, 720.0))
    _elevation = field_validator("elevation_deg")(bounded(5.0, 90.0))
    _intensity = field_validator("intensity")(bounded(0.0, 2.0))


class RenderSpec(Strict):
    width: int = Field(default=1280, ge=16, le=4096)
    height: int = Field(default=720, ge=16, le=4096)


class SceneTemplate(Strict):
    """A task category with the ranges every sampled scene is drawn from."""

    task: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    prompt: str
    duration_s: float = Field(default=5.0, gt=0, le=60)
    fps: int = Field(default=24, ge=1, le=120)
    character: CharacterSpec = Field(default_factory=CharacterSpec)
    furniture: list[ItemSpec] = Field(default_factory=list)
    objects: list[ItemSpec] = Field(default_factory=list)
    terrain: list[TerrainSpec] = Field(default_factory=list)
    focus: str | None = None  # the item or terrain the task is about; the camera keeps it visible
    camera: CameraSpec = Field(default_factory=CameraSpec)
    lighting: LightingSpec = Field(default_factory=LightingSpec)
    render: RenderSpec = Field(default_factory=RenderSpec)

    def field_paths(self) -> dict[str, str]:
        """Item name -> its place in the template (e.g. 'objects[0]'), for error messages."""
        paths = {t.name: f"terrain[{i}]" for i, t in enumerate(self.terrain)}
        paths.update({f.name: f"furniture[{i}]" for i, f in enumerate(self.furniture)})
        paths.update({o.name: f"objects[{i}]" for i, o in enumerate(self.objects)})
        return paths

    def render_prompt(self, kinds: dict[str, str]) -> str:
        """The prompt with each {item} replaced by what that item turned out to be."""
        return PLACEHOLDER.sub(lambda m: KIND_WORDS.get(kinds[m.group(1)], kinds[m.group(1)]), self.prompt)


def check_references(template: SceneTemplate, path: Path | str) -> None:
    """Cross-field rules, reported with the exact field: unique names, supports that are
    earlier furniture, a focus that exists, prompt placeholders that name items."""
    seen: dict[str, str] = {}
    for name, where in _named_fields(template):
        if name in seen:
            raise GrailError(f"name '{name}' is already used by {seen[name]}", file=path, field=f"{where}.name")
        seen[name] = where
    furniture_names = [f.name for f in template.furniture]
    for group, items in (("furniture", template.furniture), ("objects", template.objects)):
        for i, item in enumerate(items):
            # Furniture may stand only on furniture listed before it: no cycles, a build order.
            allowed = furniture_names[:i] if group == "furniture" else furniture_names
            if item.support is not None and item.support not in allowed:
                raise GrailError(f"'{item.support}' is not a furniture item listed before '{item.name}'", file=path, field=f"{group}[{i}].support")
    if template.focus is not None and template.focus not in seen:
        raise GrailError(f"'{template.focus}' names no item or terrain", file=path, field="focus")
    for placeholder in PLACEHOLDER.findall(template.prompt):
        if placeholder not in seen:
            raise GrailError(f"placeholder '{{{placeholder}}}' names no item (known: {', '.join(sorted(seen)) or 'none'})", file=path, field="prompt")


def _named_fields(template: SceneTemplate):
    for group in ("terrain", "furniture", "objects"):
        for i, item in enumerate(getattr(template, group)):
            yield item.name, f"{group}[{i}]"


# ---- the resolved scene (scene/spec.yaml) -------------------------------------------------


class ResolvedPose(Strict):
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # wxyz


class ResolvedItem(Strict):
    name: str
    kind: str
    category: str
    params: dict[str, Any]
    source: str | None = None  # user mesh path, for kind "mesh"
    scale: float = 1.0  # metres per mesh-file unit for user meshes; procedural meshes are metric
    mass: float
    static: bool
    support: str | None = None
    support_height: float | None = None
    mesh: str  # visual mesh file, relative to scene/
    collision: list[str]
    pose: ResolvedPose  # settled resting pose (terrain: its fixed pose)
    rgba: tuple[float, float, float, float]


class ResolvedCharacter(Strict):
    model: str
    model_path: str | None = None
    params: dict[str, float]
    height_m: float
    fit_residuals_m: dict[str, float]
    pose: ResolvedPose  # root (feet centre on the ground, facing +x of this frame)
    colors: dict[str, tuple[float, float, float, float]]


class ResolvedCamera(Strict):
    fov_deg: float
    width: int
    height: int
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]  # the sampled target the camera points at
    distance: float


class ResolvedLighting(Strict):
    direction: tuple[float, float, float]
    intensity: float


class ResolvedScene(Strict):
    """Everything needed to rebuild the scene: written to scene/spec.yaml."""

    id: str
    template: str
    task: str
    seed: int
    prompt: str
    duration_s: float
    fps: int
    quat_order: Literal["wxyz"] = "wxyz"
    character: ResolvedCharacter
    objects: list[ResolvedItem]
    furniture: list[ResolvedItem]
    terrain: list[ResolvedItem]
    focus: str | None
    camera: ResolvedCamera
    lighting: ResolvedLighting

    def items(self) -> list[ResolvedItem]:
        return [*self.terrain, *self.furniture, *self.objects]


# ---- loading --------------------------------------------------------------------------------

_UNION_LABELS = re.compile(r"^(tuple\[|list\[|function-|constrained-)|^(float|int|str|bool|Choice|Strict\w+)$")


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _UNION_LABELS.search(str(part)):
            continue  # pydantic's union-branch labels say nothing to a user
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def validation_error(path: Path | str, err: ValidationError) -> GrailError:
    """One line naming the file and the most specific offending field."""
    errors = err.errors()
    first = errors[0]
    same_field = [e for e in errors if _field_path(tuple(e["loc"])) == _field_path(tuple(first["loc"]))]
    best = max(same_field, key=lambda e: len(e["loc"]))  # the deepest union branch explains most
    message = re.sub(r"^(Value error|Assertion failed), ", "", best["msg"])
    return GrailError(message, file=path, field=_field_path(tuple(best["loc"])))


def read_yaml(path: Path | str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise GrailError("no such file", file=path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "yaml"
        raise GrailError(f"malformed YAML: {getattr(exc, 'problem', exc)}", file=path, field=where) from None
    except UnicodeDecodeError:
        raise GrailError("not a text file", file=path) from None


def load_template(path: Path | str) -> SceneTemplate:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise GrailError("a scene template must be a mapping", file=path, field="<root>")
    try:
        template = SceneTemplate.model_validate(data)
    except ValidationError as err:
        raise validation_error(path, err) from None
    check_references(template, path)
    return template


def load_resolved(path: Path | str) -> ResolvedScene:
    data = read_yaml(path)
    try:
        return ResolvedScene.model_validate(data)
    except ValidationError as err:
        raise validation_error(path, err) from None


def dump_resolved(scene: ResolvedScene) -> str:
    """Deterministic YAML (key order as declared, plain lists)."""
    return yaml.safe_dump(_plain(scene.model_dump(mode="json")), sort_keys=False, default_flow_style=None, width=120)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value
