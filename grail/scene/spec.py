"""Scene templates (YAML with ranges and choices) and the resolved scene they sample into.

A template states *ranges*; `grail compose` samples one concrete scene per seed. Both are
strict pydantic models: an unknown key or a wrong type is an error naming the file and field,
never silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grail.errors import GrailError

# A sampled number: a constant or an inclusive [low, high] range drawn uniformly.
Scalar = Union[float, int]
RangeSpec = Union[Scalar, tuple[Scalar, Scalar]]


PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
KIND_WORDS = {"box": "box", "cylinder": "can", "bottle": "bottle", "mug": "mug", "ball": "ball", "mesh": "object", "imported": "object"}


class Choice(BaseModel):
    """One value picked uniformly from a list."""

    model_config = ConfigDict(extra="forbid")
    choice: list[Union[Scalar, str, bool]] = Field(min_length=1)


ParamSpec = Union[RangeSpec, str, bool, Choice]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_range(value: Any) -> Any:
    if isinstance(value, tuple) and value[0] > value[1]:
        raise ValueError(f"range low {value[0]} is above high {value[1]}")
    return value


class PlacementSpec(Strict):
    """Planar placement: on the floor in world coordinates, or relative to the top centre of a
    support (`support:`) in the support's frame."""

    x: RangeSpec = 0.0
    y: RangeSpec = 0.0
    yaw_deg: RangeSpec = 0.0

    _ranges = field_validator("x", "y", "yaw_deg")(_check_range)


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


class ItemSpec(Strict):
    """A furniture piece or a manipulable object."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    variants: list[VariantSpec] = Field(min_length=1)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    support: str | None = None  # name of a furniture item whose top surface carries this one


class TerrainSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)


class ClothingSpec(Strict):
    """Colour choices per garment; each entry is a list of RGB triples (0-1) to pick from."""

    shirt: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [(0.80, 0.20, 0.20), (0.20, 0.45, 0.80), (0.95, 0.75, 0.20), (0.25, 0.60, 0.35)]
    )
    trousers: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [(0.15, 0.20, 0.35), (0.30, 0.30, 0.32), (0.45, 0.35, 0.25)]
    )
    shoes: list[tuple[float, float, float]] = Field(default_factory=lambda: [(0.95, 0.95, 0.95), (0.10, 0.10, 0.10)])
    hair: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [(0.20, 0.13, 0.08), (0.08, 0.06, 0.05), (0.55, 0.40, 0.20)]
    )
    skin: list[tuple[float, float, float]] = Field(
        default_factory=lambda: [(0.96, 0.80, 0.69), (0.78, 0.57, 0.44), (0.55, 0.38, 0.28)]
    )


class CharacterSpec(Strict):
    model: Literal["anny", "smplx"] = "anny"
    model_path: str | None = None  # SMPL-X model file (user supplied)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    clothing: ClothingSpec = Field(default_factory=ClothingSpec)


class CameraSpec(Strict):
    """Camera sampling ranges and the constraints a sampled camera must satisfy.

    azimuth_deg is the direction from the look-at point to the camera, from +x towards +y;
    distance is the 3D distance to the look-at point; height is the camera's z."""

    fov_deg: RangeSpec = (45.0, 65.0)  # vertical field of view
    distance: RangeSpec = (2.5, 4.0)
    height: RangeSpec = (1.0, 1.6)
    azimuth_deg: RangeSpec = (-110.0, -70.0)
    look_at_jitter: float = Field(default=0.1, ge=0)
    margin_px: int = Field(default=8, ge=0)  # at the default 1280x720; scaled with the width
    min_object_visibility: float = Field(default=0.9, ge=0, le=1)
    max_tries: int = Field(default=200, ge=1)

    _ranges = field_validator("fov_deg", "distance", "height", "azimuth_deg")(_check_range)


class LightingSpec(Strict):
    azimuth_deg: RangeSpec = (0.0, 360.0)
    elevation_deg: RangeSpec = (45.0, 75.0)
    intensity: RangeSpec = (0.6, 0.8)


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

    @model_validator(mode="after")
    def _references(self) -> "SceneTemplate":
        names = [i.name for i in self.furniture + self.objects] + [t.name for t in self.terrain]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate names {dupes}")
        furniture = {f.name for f in self.furniture}
        for item in self.furniture + self.objects:
            if item.support is not None and item.support not in furniture:
                raise ValueError(f"'{item.name}' stands on '{item.support}', which is not a furniture item")
        if self.focus is not None and self.focus not in names:
            raise ValueError(f"focus '{self.focus}' names no item or terrain")
        unknown = sorted(set(PLACEHOLDER.findall(self.prompt)) - set(names))
        if unknown:
            raise ValueError(f"prompt placeholders {unknown} name no item")
        return self

    def render_prompt(self, kinds: dict[str, str]) -> str:
        """The prompt with each {item} replaced by what that item turned out to be."""
        return PLACEHOLDER.sub(lambda m: KIND_WORDS.get(kinds[m.group(1)], kinds[m.group(1)]), self.prompt)


# ---- the resolved scene (scene/spec.yaml) -------------------------------------------------


class ResolvedPose(Strict):
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # wxyz


class ResolvedItem(Strict):
    name: str
    role: Literal["furniture", "object", "terrain"]
    kind: str
    category: str
    params: dict[str, Any]
    source: str | None = None  # user mesh path, for kind "mesh"
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
    look_at: tuple[float, float, float]


class ResolvedLight(Strict):
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
    items: list[ResolvedItem]
    focus: str | None
    camera: ResolvedCamera
    light: ResolvedLight


# ---- loading --------------------------------------------------------------------------------


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("tuple[", "list[", "function-")) or str(part) in {"float", "int", "str", "bool", "Choice"}:
            continue  # pydantic's union-branch labels say nothing to a user
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def validation_error(path: Path | str, err: ValidationError) -> GrailError:
    """Turn pydantic's report into one line naming the file and the first offending field."""
    first = err.errors()[0]
    return GrailError(first["msg"], file=path, field=_field_path(tuple(first["loc"])))


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
        return SceneTemplate.model_validate(data)
    except ValidationError as err:
        raise validation_error(path, err) from None


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
