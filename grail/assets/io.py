"""Write assets as mesh files (+ a small JSON record) and read them back.

Layout written by :func:`write_asset` in ``directory``::

    <name>_visual.obj        the visual mesh (metric, asset frame)
    <name>_col_<i>.obj       one convex collision part per file
    <name>_asset.json        the dict returned by write_asset (mass, com, inertia, params, ...)

Every file is written atomically (readers see the old file or the new one). MJCF for assets is
built by :func:`grail.scene.mjcf.scene_mjcf`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import trimesh

from grail.atomic import write_bytes_atomic, write_text_atomic
from grail.errors import GrailError

from .types import Asset

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise GrailError(f"asset name {name!r} must be letters, digits, '_', '-', '.'", field="name")
    return name


def _mesh_bytes(mesh: trimesh.Trimesh, fmt: str) -> bytes:
    if fmt == "obj":
        text = trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_color=False, include_texture=False)
        return text.encode()
    return trimesh.exchange.stl.export_stl(mesh)


def full_inertia(inertia: np.ndarray) -> list[float]:
    """MJCF ``fullinertia`` order: ixx iyy izz ixy ixz iyz."""
    i = np.asarray(inertia, dtype=float)
    return [float(i[0, 0]), float(i[1, 1]), float(i[2, 2]), float(i[0, 1]), float(i[0, 2]), float(i[1, 2])]


def write_asset(asset: Asset, directory, *, fmt: str = "obj") -> dict:
    """Write the visual and collision meshes and a JSON record; return that record.

    File names in the record are relative to ``directory``. ``fmt`` is 'obj' or 'stl'.
    """
    if fmt not in ("obj", "stl"):
        raise GrailError(f"mesh format must be 'obj' or 'stl', got {fmt!r}", field="fmt")
    name = _check_name(asset.name)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    visual = f"{name}_visual.{fmt}"
    write_bytes_atomic(d / visual, _mesh_bytes(asset.visual, fmt))
    cols = []
    for i, part in enumerate(asset.collision):
        fn = f"{name}_col_{i}.{fmt}"
        write_bytes_atomic(d / fn, _mesh_bytes(part, fmt))
        cols.append(fn)
    info = {
        "name": name,
        "kind": asset.kind,
        "category": asset.category,
        "visual": visual,
        "collision": cols,
        "mass": float(asset.mass),
        "com": [float(v) for v in asset.com],
        "inertia": [[float(v) for v in row] for row in np.asarray(asset.inertia)],
        "fullinertia": full_inertia(asset.inertia),
        "rgba": [float(c) for c in asset.rgba],
        "static": bool(asset.static),
        "support_height": None if asset.support_height is None else float(asset.support_height),
        "extents": [float(v) for v in asset.extents],
        "params": asset.params,
    }
    write_text_atomic(d / f"{name}_asset.json", json.dumps(info, indent=1))
    return info


def read_asset_files(directory, name: str) -> Asset:
    """Load an asset written by :func:`write_asset` (meshes + JSON record)."""
    d = Path(directory)
    rec = d / f"{name}_asset.json"
    try:
        info = json.loads(rec.read_text())
    except FileNotFoundError:
        raise GrailError("asset record not found", file=rec, field="name") from None
    except json.JSONDecodeError as exc:
        raise GrailError(f"invalid JSON ({exc.msg} at line {exc.lineno})", file=rec, field="content") from None

    def load(fn):
        p = d / fn
        try:
            m = trimesh.load(str(p), force="mesh", process=True)
        except Exception as exc:
            raise GrailError(f"cannot read mesh ({exc})", file=p, field="file") from None
        if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
            raise GrailError("mesh is empty", file=p, field="file")
        return m

    try:
        return Asset(
            name=info["name"],
            kind=info["kind"],
            category=info["category"],
            visual=load(info["visual"]),
            collision=[load(c) for c in info["collision"]],
            mass=float(info["mass"]),
            com=np.asarray(info["com"], dtype=float),
            inertia=np.asarray(info["inertia"], dtype=float),
            rgba=tuple(info["rgba"]),
            params=info.get("params", {}),
            support_height=info.get("support_height"),
            static=bool(info["static"]),
        )
    except KeyError as exc:
        raise GrailError("missing key", file=rec, field=str(exc.args[0])) from None
