"""`grail assets ...`: make or import an asset, print its figures, optionally write its files."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from grail.errors import GrailError

from .io import write_asset
from .mesh_import import import_mesh
from .procedural import make_object, make_terrain
from .types import Asset

app = typer.Typer(
    help="Procedural objects, furniture and terrain; import and check third-party meshes.",
    no_args_is_help=True,
    add_completion=False,
)


def parse_params(items: list[str] | None) -> dict:
    """['key=value', ...] -> {key: value}; values stay strings (the params models convert them)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GrailError(f"expected key=value, got {item!r}", field="--param")
        if key in out:
            raise GrailError(f"parameter {key!r} given twice", field="--param")
        out[key] = value.strip()
    return out


def asset_table(asset: Asset) -> Table:
    s = asset.summary()
    t = Table(title=f"{asset.name} ({asset.kind}, {asset.category})")
    t.add_column("property")
    t.add_column("value", justify="right")
    t.add_row("extents x y z (m)", " ".join(f"{v:.4f}" for v in s["extents"]))
    t.add_row("volume (m^3)", f"{s['volume']:.6g}")
    t.add_row("mass (kg)", f"{s['mass']:.4g}")
    t.add_row("com (m)", " ".join(f"{v:.4f}" for v in s["com"]))
    t.add_row("inertia diag (kg m^2)", " ".join(f"{v:.4g}" for v in s["inertia_diag"]))
    t.add_row("watertight", str(s["watertight"]))
    t.add_row("collision parts", str(s["collision_parts"]))
    t.add_row("support height (m)", "-" if s["support_height"] is None else f"{s['support_height']:.4f}")
    t.add_row("static", str(s["static"]))
    if "collision_method" in asset.params:
        t.add_row("collision method", str(asset.params["collision_method"]))
        t.add_row("decomposition (s)", str(asset.params["decomposition_seconds"]))
    for r in asset.params.get("repairs", []) or []:
        t.add_row("repair", str(r))
    return t


def _show(asset: Asset, out: Optional[Path]) -> None:
    console = Console()
    console.print(asset_table(asset))
    if out is not None:
        info = write_asset(asset, out)
        files = [info["visual"], *info["collision"], f"{info['name']}_asset.json"]
        console.print(f"wrote {len(files)} files to {out}")


ParamOpt = typer.Option(None, "--param", "-p", help="key=value (repeatable)")
OutOpt = typer.Option(None, "--out", help="write the meshes and the asset record here")


@app.command("object")
def object_cmd(
    kind: str = typer.Argument(..., help="box, cylinder, bottle, mug, ball, stool, chair, table"),
    param: Optional[List[str]] = ParamOpt,
    name: Optional[str] = typer.Option(None, "--name"),
    out: Optional[Path] = OutOpt,
) -> None:
    """Make a procedural object or piece of furniture."""
    _show(make_object(kind, parse_params(param), name=name), out)


@app.command("terrain")
def terrain_cmd(
    kind: str = typer.Argument(..., help="stairs_up, stairs_down, curb, slope"),
    param: Optional[List[str]] = ParamOpt,
    name: Optional[str] = typer.Option(None, "--name"),
    out: Optional[Path] = OutOpt,
) -> None:
    """Make a procedural terrain piece (x = walking direction, starts at x=0)."""
    _show(make_terrain(kind, parse_params(param), name=name), out)


@app.command("inspect")
def inspect_cmd(
    path: Path = typer.Argument(..., help="OBJ, GLB/GLTF, STL or PLY file"),
    category: str = typer.Option(..., "--category", help="tabletop, floor, furniture or terrain"),
    unit: Optional[str] = typer.Option(None, "--unit", help="m, cm, mm or in"),
    scale: Optional[float] = typer.Option(None, "--scale", help="metres per file unit"),
    density: float = typer.Option(500.0, "--density", help="kg/m^3"),
    name: Optional[str] = typer.Option(None, "--name"),
    max_faces: int = typer.Option(20000, "--max-faces"),
    lenient: bool = typer.Option(False, "--lenient", help="warn instead of rejecting odd sizes"),
    coacd_timeout: float = typer.Option(60.0, "--coacd-timeout", help="seconds for CoACD before the convex hull is used"),
    no_cache: bool = typer.Option(False, "--no-cache", help="neither read nor write the import cache"),
    out: Optional[Path] = OutOpt,
) -> None:
    """Import a mesh, repair and check it, decompose it for collision."""
    asset = import_mesh(path, category=category, scale=scale, unit=unit, density=density, name=name,
                        max_faces=max_faces, strict_size=not lenient, coacd_timeout_s=coacd_timeout,
                        cache=not no_cache)
    _show(asset, out)
