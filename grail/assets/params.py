"""Validated parameter models for procedural objects and terrain (metres, kg, kg/m^3, degrees).

Furniture defaults are child-sized for a ~1.32 m character (table top at 0.60 m, chair seat at
0.33 m). Unknown keys are rejected. Every model resolves to plain YAML-serialisable values.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grail.errors import GrailError



def _rgba(v: Any) -> Any:
    if isinstance(v, str):
        v = [s for s in v.replace("(", "").replace(")", "").split(",") if s.strip()]
    return v


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.7, 1.0)

    @field_validator("rgba", mode="before")
    @classmethod
    def _parse_rgba(cls, v):
        return _rgba(v)

    @field_validator("rgba")
    @classmethod
    def _rgba_range(cls, v):
        if any(not (0.0 <= c <= 1.0) for c in v):
            raise ValueError("rgba components must be in [0, 1]")
        return v


class _ObjectParams(_Params):
    density: float = Field(500.0, gt=1.0, le=25000.0, description="kg/m^3 (ignored when mass is set)")
    mass: Optional[float] = Field(None, gt=0.0, le=500.0, description="kg; overrides density")


# ---- tabletop / floor objects -------------------------------------------------------------


class BoxParams(_ObjectParams):
    size_x: float = Field(0.25, gt=0.005, le=3.0)
    size_y: float = Field(0.20, gt=0.005, le=3.0)
    size_z: float = Field(0.15, gt=0.005, le=3.0)
    density: float = Field(300.0, gt=1.0, le=25000.0)
    rgba: tuple[float, float, float, float] = (0.72, 0.55, 0.35, 1.0)


class CylinderParams(_ObjectParams):
    """A can: solid cylinder."""

    radius: float = Field(0.033, gt=0.003, le=1.0)
    height: float = Field(0.12, gt=0.005, le=2.0)
    sections: int = Field(32, ge=8, le=256)
    density: float = Field(850.0, gt=1.0, le=25000.0)
    rgba: tuple[float, float, float, float] = (0.8, 0.1, 0.1, 1.0)


class BottleParams(_ObjectParams):
    """Body cylinder, conical shoulder, neck cylinder (solid: a filled bottle)."""

    radius: float = Field(0.035, gt=0.005, le=0.5)
    body_height: float = Field(0.15, gt=0.005, le=1.0)
    shoulder_height: float = Field(0.04, gt=0.001, le=0.5)
    neck_radius: float = Field(0.013, gt=0.002, le=0.5)
    neck_height: float = Field(0.05, gt=0.002, le=0.5)
    sections: int = Field(32, ge=8, le=256)
    density: float = Field(900.0, gt=1.0, le=25000.0)
    rgba: tuple[float, float, float, float] = (0.2, 0.6, 0.3, 0.9)

    @model_validator(mode="after")
    def _neck(self):
        if self.neck_radius >= self.radius:
            raise ValueError(f"neck_radius ({self.neck_radius}) must be < radius ({self.radius})")
        return self


class MugParams(_ObjectParams):
    """Cylindrical shell with a bottom and a half-torus handle on the +x side."""

    radius: float = Field(0.04, gt=0.01, le=0.3, description="outer radius")
    height: float = Field(0.10, gt=0.02, le=0.5)
    wall: float = Field(0.006, gt=0.001, le=0.05)
    bottom: float = Field(0.008, gt=0.001, le=0.05)
    handle_radius: float = Field(0.028, gt=0.005, le=0.2, description="centre-line radius of the handle arc")
    handle_thickness: float = Field(0.012, gt=0.002, le=0.05, description="handle tube diameter")
    sections: int = Field(48, ge=12, le=256)
    wall_parts: int = Field(12, ge=6, le=64, description="convex collision parts around the wall")
    density: float = Field(2300.0, gt=1.0, le=25000.0, description="ceramic")
    rgba: tuple[float, float, float, float] = (0.9, 0.9, 0.85, 1.0)

    @model_validator(mode="after")
    def _fits(self):
        if self.wall >= self.radius * 0.5:
            raise ValueError(f"wall ({self.wall}) must be < radius/2 ({self.radius / 2})")
        if self.bottom >= self.height * 0.5:
            raise ValueError(f"bottom ({self.bottom}) must be < height/2 ({self.height / 2})")
        if self.handle_radius + self.handle_thickness / 2 > self.height / 2:
            raise ValueError(
                f"handle_radius + handle_thickness/2 ({self.handle_radius + self.handle_thickness / 2:g})"
                f" must be <= height/2 ({self.height / 2:g})"
            )
        if self.handle_thickness >= 2 * self.handle_radius:
            raise ValueError("handle_thickness must be < 2*handle_radius (the handle needs a hole)")
        return self


class BallParams(_ObjectParams):
    radius: float = Field(0.10, gt=0.01, le=1.0)
    subdivisions: int = Field(3, ge=1, le=5)
    density: float = Field(80.0, gt=1.0, le=25000.0, description="effective density of a solid sphere")
    rgba: tuple[float, float, float, float] = (0.1, 0.3, 0.9, 1.0)


# ---- furniture ----------------------------------------------------------------------------


class _FurnitureParams(_ObjectParams):
    density: float = Field(600.0, gt=1.0, le=25000.0, description="wood")
    leg: float = Field(0.035, gt=0.005, le=0.3, description="square leg side")
    inset: float = Field(0.02, ge=0.0, le=0.5, description="leg inset from the top's edge")
    rgba: tuple[float, float, float, float] = (0.55, 0.38, 0.22, 1.0)


class StoolParams(_FurnitureParams):
    top_x: float = Field(0.30, gt=0.05, le=2.0)
    top_y: float = Field(0.30, gt=0.05, le=2.0)
    height: float = Field(0.30, gt=0.05, le=1.5, description="top surface height")
    thickness: float = Field(0.03, gt=0.005, le=0.3)

    @model_validator(mode="after")
    def _fits(self):
        _check_legs(self.top_x, self.top_y, self.leg, self.inset, self.height, self.thickness)
        return self


class ChairParams(_FurnitureParams):
    """Seat + back (at -x, facing +x) + 4 legs."""

    seat_x: float = Field(0.32, gt=0.1, le=2.0, description="seat depth (x)")
    seat_y: float = Field(0.32, gt=0.1, le=2.0, description="seat width (y)")
    seat_height: float = Field(0.33, gt=0.05, le=1.5, description="seat top surface height")
    thickness: float = Field(0.03, gt=0.005, le=0.3, description="seat thickness")
    back_height: float = Field(0.30, gt=0.02, le=1.5, description="back height above the seat")
    back_thickness: float = Field(0.025, gt=0.005, le=0.3)

    @model_validator(mode="after")
    def _fits(self):
        _check_legs(self.seat_x, self.seat_y, self.leg, self.inset, self.seat_height, self.thickness)
        if self.back_thickness >= self.seat_x / 2:
            raise ValueError("back_thickness must be < seat_x/2")
        return self


class TableParams(_FurnitureParams):
    top_x: float = Field(0.80, gt=0.1, le=4.0)
    top_y: float = Field(0.60, gt=0.1, le=4.0)
    height: float = Field(0.60, gt=0.1, le=1.5, description="top surface height")
    thickness: float = Field(0.03, gt=0.005, le=0.3)
    leg: float = Field(0.04, gt=0.005, le=0.3)
    inset: float = Field(0.03, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _fits(self):
        _check_legs(self.top_x, self.top_y, self.leg, self.inset, self.height, self.thickness)
        return self


def _check_legs(sx, sy, leg, inset, height, thickness):
    if 2 * (leg + inset) >= min(sx, sy):
        raise ValueError(f"legs do not fit: 2*(leg+inset) ({2 * (leg + inset):g}) must be < top size ({min(sx, sy):g})")
    if thickness >= height:
        raise ValueError(f"thickness ({thickness}) must be < height ({height})")


# ---- terrain ------------------------------------------------------------------------------


class _TerrainParams(_Params):
    width: float = Field(1.2, gt=0.1, le=20.0, description="extent along y")
    rgba: tuple[float, float, float, float] = (0.6, 0.6, 0.62, 1.0)


class StairsUpParams(_TerrainParams):
    """`steps` risers going up along +x; the last one leads onto a landing of length `landing`."""

    rise: float = Field(0.10, gt=0.01, le=0.4)
    run: float = Field(0.28, gt=0.05, le=1.5)
    steps: int = Field(4, ge=1, le=30)
    landing: float = Field(0.8, gt=0.05, le=20.0)


class StairsDownParams(_TerrainParams):
    """A top landing of length `landing` (x from 0) at steps*rise, then `steps` risers going down."""

    rise: float = Field(0.10, gt=0.01, le=0.4)
    run: float = Field(0.28, gt=0.05, le=1.5)
    steps: int = Field(4, ge=1, le=30)
    landing: float = Field(0.8, gt=0.05, le=20.0)


class CurbParams(_TerrainParams):
    height: float = Field(0.10, gt=0.005, le=0.5)
    depth: float = Field(0.8, gt=0.05, le=20.0, description="extent along x")
    width: float = Field(2.0, gt=0.1, le=20.0)


class SlopeParams(_TerrainParams):
    """Incline from x=0 over horizontal `length`, then a flat top landing of length `landing`."""

    angle_deg: float = Field(10.0, gt=0.0, le=35.0)
    length: float = Field(1.5, gt=0.1, le=20.0, description="horizontal length of the incline")
    landing: float = Field(0.6, gt=0.0, le=20.0)


OBJECT_KINDS: dict[str, type[_Params]] = {
    "box": BoxParams,
    "cylinder": CylinderParams,
    "bottle": BottleParams,
    "mug": MugParams,
    "ball": BallParams,
    "stool": StoolParams,
    "chair": ChairParams,
    "table": TableParams,
}

TERRAIN_KINDS: dict[str, type[_Params]] = {
    "stairs_up": StairsUpParams,
    "stairs_down": StairsDownParams,
    "curb": CurbParams,
    "slope": SlopeParams,
}

OBJECT_CATEGORY = {
    "box": "tabletop",
    "cylinder": "tabletop",
    "bottle": "tabletop",
    "mug": "tabletop",
    "ball": "floor",
    "stool": "furniture",
    "chair": "furniture",
    "table": "furniture",
}


_BOUND_WORDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
                "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def validate_params(kind: str, params: dict | None, registry: dict[str, type[_Params]], what: str) -> _Params:
    """Validate ``params`` for ``kind``; every problem becomes a GrailError.

    The error's field is the parameter's own name (e.g. ``size_x``), or None for a problem that
    involves several parameters; callers prefix their own path (a template gives
    ``objects[0].variants[0].params.size_x``). The message starts with the kind:
    ``box: size_x must be > 0.005 (got -0.1)``. Unknown parameters list the allowed names.
    """
    if kind not in registry:
        raise GrailError(f"unknown {what} kind {kind!r}; expected one of {sorted(registry)}", field="kind")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise GrailError(f"{kind}: params must be a mapping, got {type(params).__name__}", field=None)
    model = registry[kind]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
        raise GrailError(f"{kind}: {_describe(err, loc, model)}", field=loc or None) from None


def _describe(err: dict, loc: str, model: type[_Params]) -> str:
    """One readable sentence for a pydantic error."""
    etype = err.get("type", "")
    if etype == "extra_forbidden":
        return f"unknown parameter {loc!r} (allowed: {', '.join(sorted(model.model_fields))})"
    ctx = err.get("ctx") or {}
    if etype in _BOUND_WORDS and _BOUND_WORDS[etype][0] in ctx:
        key, op = _BOUND_WORDS[etype]
        msg = f"{loc} must be {op} {ctx[key]}"
    else:
        msg = str(err.get("msg", "invalid value"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        where = "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + str(p)
                        for i, p in enumerate(err.get("loc", ())))
        msg = f"{where}: {msg}" if where else msg
    if loc and "input" in err:
        msg = f"{msg} (got {err['input']!r})"
    return msg


def resolved(model: _Params) -> dict:
    """Plain dict of a params model (tuples as lists) for YAML."""
    out = model.model_dump()
    for k, v in list(out.items()):
        if isinstance(v, tuple):
            out[k] = [float(x) for x in v]
    return out

CATEGORY_RGBA = {
    "tabletop": (0.75, 0.75, 0.78, 1.0),
    "floor": (0.6, 0.65, 0.75, 1.0),
    "furniture": (0.55, 0.38, 0.22, 1.0),
    "terrain": (0.6, 0.6, 0.62, 1.0),
}
