"""Procedural objects, furniture and terrain: dimensions, mass properties, collision, MuJoCo."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
import trimesh
import yaml

from grail.assets import (
    OBJECT_KINDS,
    TERRAIN_KINDS,
    Asset,
    make_object,
    make_terrain,
    read_asset_files,
    surface_height,
    write_asset,
)
from grail.assets import _geom as g
from grail.assets import procedural
from grail.cli import main as grail_main
from grail.errors import GrailError
from grail.scene.mjcf import LightSetup, MjcfItem, scene_mjcf

MM = 1e-3


def expected_extents(kind: str, p: dict) -> tuple[float, float, float]:
    if kind == "box":
        return p["size_x"], p["size_y"], p["size_z"]
    if kind == "cylinder":
        return 2 * p["radius"], 2 * p["radius"], p["height"]
    if kind == "bottle":
        return 2 * p["radius"], 2 * p["radius"], p["body_height"] + p["shoulder_height"] + p["neck_height"]
    if kind == "mug":
        return 2 * p["radius"] + p["handle_radius"] + p["handle_thickness"] / 2, 2 * p["radius"], p["height"]
    if kind == "ball":
        return (2 * p["radius"],) * 3
    if kind in ("stool", "table"):
        return p["top_x"], p["top_y"], p["height"]
    if kind == "chair":
        return p["seat_x"], p["seat_y"], p["seat_height"] + p["back_height"]
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def objects():
    return {k: make_object(k) for k in OBJECT_KINDS}


@pytest.mark.parametrize("kind", list(OBJECT_KINDS))
def test_object_dimensions_base_and_mass(objects, kind):
    a = objects[kind]
    lo, hi = a.visual.bounds
    assert abs(lo[2]) < 1e-9, "base on z=0"
    assert np.allclose((lo[:2] + hi[:2]) / 2, 0.0, atol=1e-9), "bounding box centred on x,y"
    # sphere tessellation (icosphere) stays within 1 mm of the radius for the default ball
    assert np.allclose(a.extents, expected_extents(kind, a.params), atol=1 * MM), (a.extents, a.params)
    assert a.visual.is_watertight and a.visual.volume > 0
    assert a.mass == pytest.approx(a.params["density"] * a.visual.volume, rel=1e-9)
    assert a.com.shape == (3,) and a.inertia.shape == (3, 3)
    assert np.allclose(a.inertia, a.inertia.T)
    assert np.all(np.linalg.eigvalsh(a.inertia) > 0)
    assert not a.static and a.category in ("tabletop", "floor", "furniture")
    for part in a.collision:
        assert part.is_convex and part.volume > 0
        assert np.all(part.bounds[0] >= lo - 2 * MM) and np.all(part.bounds[1] <= hi + 2 * MM)
    yaml.safe_dump(a.params)  # plain values only
    again = make_object(kind, a.params)  # resolved params reproduce the asset
    assert again.mass == pytest.approx(a.mass, rel=1e-9)


def test_box_inertia_matches_formula():
    sx, sy, sz, rho = 0.3, 0.2, 0.1, 400.0
    a = make_object("box", {"size_x": sx, "size_y": sy, "size_z": sz, "density": rho})
    m = rho * sx * sy * sz
    assert a.mass == pytest.approx(m, rel=1e-12)
    expect = np.diag([m / 12 * (sy**2 + sz**2), m / 12 * (sx**2 + sz**2), m / 12 * (sx**2 + sy**2)])
    assert np.allclose(a.inertia, expect, rtol=1e-9, atol=1e-15)
    assert np.allclose(a.com, [0, 0, sz / 2], atol=1e-12)


def test_explicit_mass_overrides_density():
    a = make_object("box", {"mass": 1.5})
    assert a.mass == pytest.approx(1.5)
    assert a.params["density"] == pytest.approx(1.5 / (0.25 * 0.2 * 0.15))


def test_cylinder_inertia_close_to_formula():
    r, h = 0.04, 0.15
    a = make_object("cylinder", {"radius": r, "height": h, "sections": 128})
    m = a.mass
    assert m == pytest.approx(a.params["density"] * math.pi * r * r * h, rel=2e-3)
    ixx = m * (3 * r * r + h * h) / 12
    izz = m * r * r / 2
    assert np.allclose(np.diag(a.inertia), [ixx, ixx, izz], rtol=3e-3)


def test_table_mass_properties_match_sum_of_pieces():
    p = dict(top_x=0.8, top_y=0.6, height=0.6, thickness=0.03, leg=0.04, inset=0.03, density=600.0)
    a = make_object("table", p)
    v = 0.8 * 0.6 * 0.03 + 4 * 0.04 * 0.04 * (0.6 - 0.03)
    assert a.mass == pytest.approx(600 * v, rel=1e-9)
    assert a.support_height == pytest.approx(0.6)
    assert len(a.collision) == 5
    top = max(a.collision, key=lambda c: c.bounds[1][2])
    assert top.bounds[1][2] == pytest.approx(0.6, abs=1e-9)


def _box_props(lo, hi, rho):
    """Analytic (mass, com, inertia about com) of a solid axis-aligned box."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    e = hi - lo
    m = rho * np.prod(e)
    inertia = np.diag([m / 12 * (e[1] ** 2 + e[2] ** 2), m / 12 * (e[0] ** 2 + e[2] ** 2), m / 12 * (e[0] ** 2 + e[1] ** 2)])
    return m, (lo + hi) / 2, inertia


def test_table_inertia_matches_parallel_axis_sum_of_boxes():
    tx, ty, h, t, leg, inset, rho = 0.8, 0.6, 0.6, 0.03, 0.04, 0.03, 600.0
    a = make_object("table", dict(top_x=tx, top_y=ty, height=h, thickness=t, leg=leg, inset=inset, density=rho))
    boxes = [_box_props([-tx / 2, -ty / 2, h - t], [tx / 2, ty / 2, h], rho)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (tx / 2 - inset - leg / 2), sy * (ty / 2 - inset - leg / 2)
            boxes.append(_box_props([cx - leg / 2, cy - leg / 2, 0], [cx + leg / 2, cy + leg / 2, h - t], rho))
    mass = sum(b[0] for b in boxes)
    com = sum(b[0] * b[1] for b in boxes) / mass
    inertia = np.zeros((3, 3))
    for m, c, i in boxes:  # parallel-axis theorem, written out here rather than reusing _geom
        d = c - com
        inertia += i + m * (d @ d * np.eye(3) - np.outer(d, d))
    assert a.mass == pytest.approx(mass, rel=1e-9)
    assert np.allclose(a.com, com, rtol=0, atol=1e-9)
    assert np.allclose(a.inertia, inertia, rtol=1e-6, atol=1e-9 * np.abs(inertia).max())
    assert inertia[0, 0] != pytest.approx(inertia[1, 1], rel=0.05)  # a non-trivial check: tx != ty


def test_ball_inertia_is_solid_sphere():
    r = 0.1
    a = make_object("ball", {"radius": r, "subdivisions": 5, "density": 80.0})
    m = a.mass
    assert m == pytest.approx(80.0 * 4 / 3 * math.pi * r**3, rel=3e-3)  # the icosphere is inscribed
    assert np.allclose(a.com, [0, 0, r], atol=1e-9)
    assert np.allclose(a.inertia, np.eye(3) * 2 / 5 * m * r * r, rtol=5e-3, atol=1e-4 * 2 / 5 * m * r * r)


def test_mug_inertia_is_physical(objects):
    a = objects["mug"]
    inertia = a.inertia
    assert np.array_equal(inertia, inertia.T)
    p = np.linalg.eigvalsh(inertia)
    assert np.all(p > 0)
    for k in range(3):  # triangle inequality of principal moments
        assert p[k] <= p[(k + 1) % 3] + p[(k + 2) % 3] + 1e-15
    lo, hi = a.visual.bounds
    assert np.all(a.com > lo) and np.all(a.com < hi)
    assert abs(a.com[1]) < 1e-6 and abs(inertia[0, 1]) < 1e-9 and abs(inertia[1, 2]) < 1e-9  # symmetric in y
    shell_cx = lo[0] + a.params["radius"]  # the handle on +x pulls the com off the shell's axis
    assert a.com[0] > shell_cx


def test_crosscheck_raises_on_inconsistent_inertia():
    b = g.box([0, 0, 0], [0.2, 0.1, 0.05])
    m, c, i = g.mass_properties(b, 500.0)
    procedural._crosscheck("box", [b], 500.0, m, c, i)  # consistent: no error
    with pytest.raises(RuntimeError, match="inertia"):
        procedural._crosscheck("box", [b], 500.0, m, c, i * 1.01)
    with pytest.raises(RuntimeError, match="mass"):
        procedural._crosscheck("box", [b], 500.0, m * 1.01, c, i)


def test_furniture_child_sized_and_parts(objects):
    assert 0.55 <= objects["table"].support_height <= 0.65
    assert 0.30 <= objects["chair"].support_height <= 0.36
    assert len(objects["chair"].collision) == 6  # seat + back + 4 legs
    assert len(objects["stool"].collision) == 5
    for k in ("box", "cylinder", "bottle", "mug", "ball"):
        assert objects[k].support_height is None


def test_mug_handle_is_its_own_convex_part(objects):
    a = objects["mug"]
    p = a.params
    shell_cx = a.visual.bounds[0][0] + p["radius"]  # shell axis x (bbox starts at the shell's -x side)
    handle = a.collision[-1]
    assert handle.is_convex
    assert handle.bounds[0][0] >= shell_cx + p["radius"] - p["wall"] - 1e-6  # starts in the wall
    assert handle.bounds[1][0] == pytest.approx(shell_cx + p["radius"] + p["handle_radius"] + p["handle_thickness"] / 2,
                                                abs=1 * MM)
    for part in a.collision[:-1]:  # nothing else reaches past the shell
        assert part.bounds[1][0] <= shell_cx + p["radius"] + 1e-6
    # the cavity is open: a point inside the cup is outside the solid
    probe = g.box([shell_cx - 0.005, -0.005, 0.05], [shell_cx + 0.005, 0.005, 0.06])
    assert (g.to_manifold(a.visual) ^ g.to_manifold(probe)).volume() == pytest.approx(0.0, abs=1e-12)
    assert (g.to_manifold(a.visual) ^ g.to_manifold(probe.copy().apply_translation([0, 0, -0.05]))).volume() > 0
    # shell + bottom + handle volume is a bit more than the bare shell
    shell = math.pi * (p["radius"] ** 2 * p["height"] - (p["radius"] - p["wall"]) ** 2 * (p["height"] - p["bottom"]))
    assert shell < a.visual.volume < shell * 1.3


def test_bad_params_raise_grail_error_naming_field():
    # the field is the parameter's own name (callers prefix their path); the message names the kind
    with pytest.raises(GrailError) as e:
        make_object("mug", {"heigth": 0.1})
    assert e.value.field == "heigth" and e.value.reason.startswith("mug: unknown parameter 'heigth'")
    assert "(allowed: bottom, density, " in e.value.reason and "height" in e.value.reason
    with pytest.raises(GrailError) as e:
        make_object("box", {"size_x": -0.1})
    assert e.value.field == "size_x" and e.value.reason == "box: size_x must be > 0.005 (got -0.1)"
    with pytest.raises(GrailError) as e:
        make_object("mug", {"wall": 0.03, "radius": 0.04})
    assert e.value.field is None and e.value.reason.startswith("mug: wall (0.03) must be < radius/2")
    with pytest.raises(GrailError) as e:
        make_object("sofa")
    assert e.value.field == "kind"
    with pytest.raises(GrailError) as e:
        make_terrain("stairs_up", {"rise": 2.0})
    assert e.value.field == "rise" and e.value.reason == "stairs_up: rise must be <= 0.4 (got 2.0)"
    with pytest.raises(GrailError) as e:
        make_object("box", {"rgba": "1,0,0"})
    assert e.value.field == "rgba" and e.value.reason.startswith("box: rgba[3]")
    with pytest.raises(GrailError) as e:
        make_object("box", [0.1])
    assert e.value.field is None and "box: params must be a mapping" in str(e.value)
    assert make_object("box", {"rgba": "1,0,0,1", "size_x": "0.3"}).rgba == (1.0, 0.0, 0.0, 1.0)


# ---- terrain ------------------------------------------------------------------------------


def test_stairs_up_geometry_and_surface_height():
    p = dict(rise=0.1, run=0.3, steps=4, landing=0.8, width=1.0)
    a = make_terrain("stairs_up", p)
    assert a.static and a.mass == 0.0 and a.category == "terrain"
    lo, hi = a.visual.bounds
    assert np.allclose(lo, [0, -0.5, 0], atol=1e-9)
    assert np.allclose(hi, [3 * 0.3 + 0.8, 0.5, 0.4], atol=1e-9)
    assert len(a.collision) == 4 and all(c.is_convex for c in a.collision)
    xs = np.array([-0.5, 0.0, 0.15, 0.29, 0.31, 0.75, 0.95, 1.69, 1.71, 3.0])
    z = surface_height(a, np.c_[xs, np.zeros_like(xs)])
    assert np.allclose(z, [0, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.4, 0, 0])
    assert surface_height(a, np.array([0.15, 0.6]))[()] == 0.0  # off the side (|y| > width/2)
    _check_against_mesh(a, xs[(xs > 0) & (xs < 1.7)])


def test_stairs_down_and_curb_and_slope_surface_height():
    a = make_terrain("stairs_down", dict(rise=0.12, run=0.25, steps=3, landing=0.6))
    xs = np.array([-0.1, 0.3, 0.59, 0.7, 0.9, 1.2])
    assert np.allclose(surface_height(a, np.c_[xs, np.zeros_like(xs)]), [0, 0.36, 0.36, 0.24, 0.12, 0])
    assert a.support_height == pytest.approx(0.36)
    _check_against_mesh(a, xs[(xs > 0) & (xs < 1.1)])

    c = make_terrain("curb", dict(height=0.15, depth=0.5, width=2.0))
    assert np.allclose(c.extents, [0.5, 2.0, 0.15], atol=1e-9)
    assert np.allclose(surface_height(c, [[-0.01, 0], [0.25, 0.9], [0.25, 1.1]]), [0, 0.15, 0])

    s = make_terrain("slope", dict(angle_deg=10, length=1.5, landing=0.5, width=1.0))
    h = 1.5 * math.tan(math.radians(10))
    assert s.extents[2] == pytest.approx(h, abs=1e-9)
    xs = np.array([0.0, 0.75, 1.5, 1.8, 2.1])
    assert np.allclose(surface_height(s, np.c_[xs, np.zeros_like(xs)]), [0, h / 2, h, h, 0])
    _check_against_mesh(s, np.array([0.3, 0.75, 1.2, 1.8]))
    with pytest.raises(GrailError):
        surface_height(make_object("box"), np.zeros((1, 2)))


def _check_against_mesh(asset, xs):
    """surface_height agrees with the highest mesh point straight above/below (x, 0.1)."""
    tri = asset.visual.triangles  # (F, 3, 3)
    top = np.zeros(len(xs))
    for i, x in enumerate(xs):
        pt = np.array([x, 0.1])
        a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
        v0, v1, v2 = b - a, c - a, pt - a
        den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
        ok = np.abs(den) > 1e-12
        u = np.where(ok, (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / np.where(ok, den, 1), -1)
        v = np.where(ok, (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / np.where(ok, den, 1), -1)
        hit = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
        z = tri[:, 0, 2] + u * (tri[:, 1, 2] - tri[:, 0, 2]) + v * (tri[:, 2, 2] - tri[:, 0, 2])
        top[i] = z[hit].max() if hit.any() else 0.0
    assert np.allclose(top, surface_height(asset, np.c_[xs, np.full(len(xs), 0.1)]), atol=1e-6)


# ---- files and MuJoCo ---------------------------------------------------------------------


def _load_scene(tmp_path, bodies: list[tuple[Asset, dict, tuple]]) -> mujoco.MjModel:
    """MuJoCo model of written assets, built by the scene MJCF builder production uses (the
    same MjcfItem fields as grail.scene.compose._mjcf_item fills)."""
    items = [
        MjcfItem(name=info["name"], role="terrain" if a.static else ("furniture" if a.category == "furniture" else "object"),
                 visual_file=info["visual"], collision_files=list(info["collision"]), mass=float(a.mass),
                 com=np.asarray(a.com, float), inertia=np.asarray(a.inertia, float), rgba=tuple(a.rgba),
                 pos=np.asarray(pos, float), quat=np.array([1.0, 0.0, 0.0, 0.0]), static=bool(a.static))
        for a, info, pos in bodies
    ]
    light = LightSetup(direction=np.array([0, 0, -1.0]), intensity=0.7)
    xml = scene_mjcf("test", items, str(tmp_path), light)
    (tmp_path / "scene.xml").write_text(xml)
    return mujoco.MjModel.from_xml_path(str(tmp_path / "scene.xml"))


@pytest.mark.parametrize("kind", list(OBJECT_KINDS))
def test_mujoco_loads_and_object_settles(objects, tmp_path, kind):
    a = objects[kind]
    info = write_asset(a, tmp_path)
    assert (tmp_path / info["visual"]).is_file() and len(info["collision"]) == len(a.collision)
    m = _load_scene(tmp_path, [(a, info, (0.0, 0.0, 0.03))])
    assert m.nmesh == 1 + len(a.collision)
    assert m.body_mass[1] == pytest.approx(a.mass, rel=1e-6)
    d = mujoco.MjData(m)
    mujoco.mj_step(m, d, nstep=600)
    assert abs(d.qpos[2]) < 2 * MM, "base rests on the plane at z=0"
    assert abs(d.qpos[3]) > 0.99, "stays upright"
    assert np.abs(d.qvel[:3]).max() < 0.01  # at rest (the faceted ball may still rock slightly)
    assert np.abs(d.qvel[3:]).max() < 0.2


def test_mujoco_terrain_box_lands_on_step(tmp_path):
    stairs = make_terrain("stairs_up", dict(rise=0.1, run=0.4, steps=3, landing=0.6))
    box = make_object("box", dict(size_x=0.1, size_y=0.1, size_z=0.1))
    si = write_asset(stairs, tmp_path)
    bi = write_asset(box, tmp_path)
    x = 0.6  # middle of the second tread
    m = _load_scene(tmp_path, [(stairs, si, (0, 0, 0)), (box, bi, (x, 0.0, 0.25))])
    d = mujoco.MjData(m)
    mujoco.mj_step(m, d, nstep=600)
    expect = surface_height(stairs, np.array([x, 0.0]))
    assert expect == pytest.approx(0.2)
    assert d.qpos[2] == pytest.approx(expect, abs=2 * MM)


def test_write_read_roundtrip(objects, tmp_path):
    a = objects["chair"]
    info = write_asset(a, tmp_path)
    assert info["fullinertia"][:3] == pytest.approx(np.diag(a.inertia).tolist())
    b = read_asset_files(tmp_path, "chair")
    assert b.visual.volume == pytest.approx(a.visual.volume, rel=1e-6)
    assert b.mass == a.mass and len(b.collision) == len(a.collision)
    with pytest.raises(GrailError):
        read_asset_files(tmp_path, "nothing")


def _exit_code(argv: list[str]) -> int:
    try:
        grail_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli(tmp_path, capsys):
    assert _exit_code(["assets", "object", "table", "--param", "height=0.55", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "table_visual.obj").is_file() and (tmp_path / "table_col_4.obj").is_file()
    assert "support height" in capsys.readouterr().out
    assert _exit_code(["assets", "terrain", "curb", "-p", "height=0.2"]) == 0
    assert _exit_code(["assets", "object", "table", "-p", "hieght=0.5"]) == 1
    err = capsys.readouterr().err
    assert "hieght" in err and "table: unknown parameter" in err
    assert _exit_code(["assets", "object", "table", "-p", "height"]) == 1


def test_kind_registries():
    assert set(OBJECT_KINDS) == {"box", "cylinder", "bottle", "mug", "ball", "stool", "chair", "table"}
    assert set(TERRAIN_KINDS) == {"stairs_up", "stairs_down", "curb", "slope"}
    assert isinstance(make_object("ball").visual, trimesh.Trimesh)
