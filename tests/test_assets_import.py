"""Mesh import: units, formats, repair, rejection, size rule, convex decomposition, cache."""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings

import mujoco
import numpy as np
import pytest
import trimesh

from grail.assets import Asset, AssetSizeWarning, import_mesh, make_object, write_asset
from grail.assets import _geom as g
from grail.assets import mesh_import
from grail.assets.mesh_import import cache_root, convex_parts
from grail.errors import GrailError
from grail.scene.mjcf import LightSetup, MjcfItem, scene_mjcf

MM = 1e-3
BOX_M = np.array([0.20, 0.10, 0.05])  # a 20 x 10 x 5 cm box


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Each test gets an empty import cache (never the user's ~/.cache/grail)."""
    monkeypatch.setenv("GRAIL_CACHE_DIR", str(tmp_path / "grail_cache"))


def _mjcf_model(directory, placed: list[tuple[Asset, dict, tuple]]) -> mujoco.MjModel:
    """MuJoCo model from written assets, built by the scene MJCF builder production uses."""
    items = [
        MjcfItem(name=info["name"], role="terrain" if a.static else "object", visual_file=info["visual"],
                 collision_files=list(info["collision"]), mass=float(a.mass), com=np.asarray(a.com, float),
                 inertia=np.asarray(a.inertia, float), rgba=tuple(a.rgba), pos=np.asarray(pos, float),
                 quat=np.array([1.0, 0.0, 0.0, 0.0]), static=bool(a.static))
        for a, info, pos in placed
    ]
    light = LightSetup(direction=np.array([0, 0, -1.0]), intensity=0.7)
    return mujoco.MjModel.from_xml_string(scene_mjcf("test", items, str(directory), light))


def _box_file(tmp_path, ext: str, unit: str, offset=(3.0, -2.0, 7.0)) -> str:
    per_unit = {"cm": 0.01, "mm": 0.001, "m": 1.0}[unit]
    b = trimesh.creation.box(extents=BOX_M / per_unit)
    b.apply_translation(np.asarray(offset) / per_unit)  # off-centre on purpose
    path = tmp_path / f"box_{unit}.{ext}"
    b.export(str(path))
    return str(path)


@pytest.mark.parametrize("ext", ["obj", "glb", "stl", "ply"])
@pytest.mark.parametrize("unit", ["cm", "mm"])
def test_import_formats_and_units(tmp_path, ext, unit):
    a = import_mesh(_box_file(tmp_path, ext, unit), category="tabletop", unit=unit, density=700.0)
    # glTF is Y-up: the file's y (10 cm) becomes -z... so its z (5 cm) becomes y
    expect = BOX_M[[0, 2, 1]] if ext == "glb" else BOX_M
    assert np.allclose(a.extents, expect, atol=1 * MM)
    lo, hi = a.visual.bounds
    assert abs(lo[2]) < 1e-9 and np.allclose((lo[:2] + hi[:2]) / 2, 0, atol=1e-9)
    assert a.visual.is_watertight
    assert a.mass == pytest.approx(700.0 * np.prod(BOX_M), rel=1e-6)
    m = a.mass
    sx, sy, sz = expect
    assert np.allclose(np.diag(a.inertia), [m / 12 * (sy**2 + sz**2), m / 12 * (sx**2 + sz**2), m / 12 * (sx**2 + sy**2)],
                       rtol=1e-6)
    assert a.collision and all(p.is_convex for p in a.collision)
    assert a.kind == "imported" and a.params["unit"] == unit and not a.static


def test_scale_equals_unit_and_cylinder_volume(tmp_path):
    c = trimesh.creation.cylinder(radius=40.0, height=120.0, sections=64)  # mm
    path = tmp_path / "can.stl"
    c.export(str(path))
    a = import_mesh(path, category="tabletop", scale=0.001, density=1000.0)
    b = import_mesh(path, category="tabletop", unit="mm", density=1000.0)
    assert np.allclose(a.extents, [0.08, 0.08, 0.12], atol=1 * MM)
    assert a.mass == pytest.approx(b.mass) == pytest.approx(1000.0 * c.volume * 1e-9, rel=1e-6)
    assert a.params["collision_method"] == "convex" and len(a.collision) == 1


def test_hole_is_repaired(tmp_path):
    c = trimesh.creation.cylinder(radius=5.0, height=10.0, sections=32)  # cm
    top = c.triangles_center[:, 2] > 4.99
    open_mesh = trimesh.Trimesh(c.vertices, c.faces[~top], process=False)
    assert not open_mesh.is_watertight
    path = tmp_path / "open_can.obj"
    open_mesh.export(str(path))
    a = import_mesh(path, category="tabletop", unit="cm")
    assert a.visual.is_watertight
    assert any("filled 1 hole" in r for r in a.params["repairs"])
    assert a.visual.volume == pytest.approx(c.volume * 1e-6, rel=1e-6)


def test_inverted_normals_fixed(tmp_path):
    b = trimesh.creation.box(extents=[10.0, 10.0, 10.0])
    b.invert()
    path = tmp_path / "inside_out.ply"
    b.export(str(path))
    a = import_mesh(path, category="tabletop", unit="cm")
    assert a.visual.volume == pytest.approx(1e-3, rel=1e-9) and a.mass > 0


@pytest.mark.parametrize("subdiv", [False, True])
def test_flat_plane_rejected(tmp_path, subdiv):
    plane = trimesh.Trimesh([[0, 0, 0], [20, 0, 0], [20, 20, 0], [0, 20, 0]], [[0, 1, 2], [0, 2, 3]])
    if subdiv:
        plane = plane.subdivide().subdivide()
    path = tmp_path / "plane.stl"
    plane.export(str(path))
    with pytest.raises(GrailError) as e:
        import_mesh(path, category="tabletop", unit="cm")
    assert e.value.field == "path" and e.value.file == str(path) and "flat" in str(e.value)


def test_non_manifold_rejected(tmp_path):
    tet = trimesh.creation.box(extents=[10, 10, 10])
    v = np.vstack([tet.vertices, [[0.0, 0.0, 20.0]]])
    f0 = tet.faces[0]
    fin = [[f0[0], f0[1], len(v) - 1]]  # a fin on an existing edge: 3 faces share that edge
    mesh = trimesh.Trimesh(v, np.vstack([tet.faces, fin]), process=False)
    path = tmp_path / "fin.obj"
    mesh.export(str(path))
    with pytest.raises(GrailError) as e:
        import_mesh(path, category="tabletop", unit="cm")
    assert e.value.field == "path" and "watertight" in str(e.value)


@pytest.mark.parametrize("ext", ["obj", "glb", "stl", "ply"])
def test_garbage_rejected(tmp_path, ext):
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(GrailError) as e:
        import_mesh(path, category="tabletop", unit="m")
    assert e.value.file == str(path) and e.value.field == "path"
    assert str(e.value).startswith(str(path) + ": path: ")


def test_bad_arguments(tmp_path):
    good = _box_file(tmp_path, "stl", "cm")
    with pytest.raises(GrailError) as e:  # a cm file read as metres: 20 m "tabletop"
        import_mesh(good, category="tabletop", unit="m")
    assert e.value.field == "unit" and "'cm' would fit" in str(e.value)
    for scale in (1e9, -1.0, float("nan"), 0.0):
        with pytest.raises(GrailError) as e:
            import_mesh(good, category="tabletop", scale=scale)
        assert e.value.field == "scale"
    with pytest.raises(GrailError) as e:
        import_mesh(good, category="tabletop", scale=0.01, unit="cm")
    with pytest.raises(GrailError) as e:
        import_mesh(good, category="tabletop")
    with pytest.raises(GrailError) as e:
        import_mesh(good, category="tabletop", unit="furlong")
    assert e.value.field == "unit"
    with pytest.raises(GrailError) as e:
        import_mesh(good, category="kitchen", unit="cm")
    assert e.value.field == "category"
    for name in ("model.fbx", "model.txt", "model"):
        p = tmp_path / name
        p.write_bytes(b"x")
        with pytest.raises(GrailError) as e:
            import_mesh(p, category="tabletop", unit="cm")
        assert e.value.field == "path" and "extension" in str(e.value)
    with pytest.raises(GrailError) as e:
        import_mesh(tmp_path / "missing.obj", category="tabletop", unit="cm")
    assert e.value.field == "path" and "not found" in str(e.value)
    with pytest.raises(GrailError) as e:
        import_mesh(good, category="tabletop", unit="cm", coacd_timeout_s=0)
    assert e.value.field == "coacd_timeout_s"


def test_size_rule_warns_then_rejects(tmp_path):
    good = _box_file(tmp_path, "stl", "cm")  # largest extent 0.2 m
    with pytest.warns(AssetSizeWarning):  # furniture expects 0.5-1.5 m; 0.2 m is within 3x
        a = import_mesh(good, category="furniture", unit="cm")
    assert a.category == "furniture"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in range: no warning
        import_mesh(good, category="tabletop", unit="cm")
    with pytest.warns(AssetSizeWarning):  # 2 cm tabletop object: mildly small
        import_mesh(good, category="tabletop", unit="mm")
    with pytest.raises(GrailError) as e:  # 2 mm tabletop object: < 0.05/3 m
        import_mesh(good, category="tabletop", scale=1e-4)
    assert e.value.field == "scale"
    with pytest.warns(AssetSizeWarning):
        import_mesh(good, category="tabletop", scale=1e-4, strict_size=False)


def test_coacd_splits_concave_l_shape(tmp_path):
    a = import_mesh(_ell_file(tmp_path), category="tabletop", unit="cm", density=500.0)
    assert a.params["collision_method"] == "coacd"
    assert 2 <= len(a.collision) <= 16
    assert all(p.is_convex for p in a.collision)
    assert sum(p.volume for p in a.collision) == pytest.approx(a.visual.volume, rel=0.05)
    assert a.mass == pytest.approx(500.0 * 0.005, rel=1e-6)  # 0.3*0.1*0.1 + 0.1*0.2*0.1 m^3

    # MuJoCo loads it as convex mesh geoms and it settles flat on the plane
    info = write_asset(a, tmp_path / "out")
    m = _mjcf_model(tmp_path / "out", [(a, info, (0, 0, 0.02))])
    assert m.body_mass[1] == pytest.approx(a.mass, rel=1e-6)
    d = mujoco.MjData(m)
    mujoco.mj_step(m, d, nstep=500)
    assert abs(d.qpos[2]) < 2 * MM and abs(d.qpos[3]) > 0.99


def test_coacd_mug(tmp_path):
    mug = make_object("mug").visual.copy()
    mug.apply_scale(1000.0)  # to mm
    path = tmp_path / "mug.obj"
    mug.export(str(path))
    t0 = time.perf_counter()
    a = import_mesh(path, category="tabletop", unit="mm", density=2300.0)
    elapsed = time.perf_counter() - t0
    assert a.params["collision_method"] == "coacd"
    assert 2 < len(a.collision) <= 16 and all(p.is_convex for p in a.collision)
    assert elapsed < 30.0
    assert np.allclose(a.extents, [0.114, 0.08, 0.10], atol=1 * MM)
    print(f"mug import {elapsed:.2f}s, coacd {a.params['decomposition_seconds']}s, {len(a.collision)} parts")


def test_convex_hull_fallback_when_coacd_crashes(caplog, monkeypatch):
    """A CoACD process that dies (here: abort()) costs only the decomposition, never the caller."""
    monkeypatch.setattr(mesh_import, "_coacd_command", lambda src, dst: [sys.executable, "-c", "import os; os.abort()"])
    with caplog.at_level(logging.WARNING, logger="grail.assets.mesh_import"):
        parts, how, note = convex_parts(make_object("mug").visual)
    assert how == "hull" and len(parts) == 1 and parts[0].is_convex
    assert note.startswith("coacd failed") and note.endswith("convex hull used")
    assert "convex hull used" in caplog.text


def _ell_file(tmp_path, name="ell.obj", arm=30.0) -> str:
    """An L of two 10 cm thick bars (cm): concave, so CoACD splits it."""
    a_ = trimesh.creation.box(extents=[arm, 10, 10]).apply_translation([arm / 2, 5, 5])
    b_ = trimesh.creation.box(extents=[10, 30, 10]).apply_translation([5, 15, 5])
    ell = trimesh.boolean.union([a_, b_], engine="manifold")
    path = tmp_path / name
    ell.export(str(path))
    return str(path)


def test_coacd_timeout_falls_back_to_hull_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="grail.assets.mesh_import"):
        t0 = time.perf_counter()
        a = import_mesh(_ell_file(tmp_path), category="tabletop", unit="cm", coacd_timeout_s=0.01)
        elapsed = time.perf_counter() - t0
    assert a.params["collision_method"] == "hull"
    assert len(a.collision) == 1 and a.collision[0].is_convex
    assert "coacd timed out after 0.01 s; convex hull used" in a.params["repairs"]
    assert "coacd timed out" in caplog.text
    assert elapsed < 10.0
    assert a.mass == pytest.approx(500.0 * 0.005, rel=1e-6)  # the visual solid is unaffected


def test_import_cache_hit_identical_and_misses_on_change(tmp_path, monkeypatch, caplog):
    calls = []
    real_load = mesh_import._load
    monkeypatch.setattr(mesh_import, "_load", lambda p: calls.append(p) or real_load(p))
    path = _ell_file(tmp_path)

    t0 = time.perf_counter()
    a = import_mesh(path, category="tabletop", unit="cm", name="first")
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = import_mesh(path, category="tabletop", unit="cm")
    t_cached = time.perf_counter() - t0
    print(f"L-shape import {t_first:.2f}s, cached {t_cached:.3f}s")
    assert len(calls) == 1, "the second import must come from the cache"
    assert a.params["collision_method"] == b.params["collision_method"] == "coacd"
    assert np.array_equal(a.visual.vertices, b.visual.vertices) and np.array_equal(a.visual.faces, b.visual.faces)
    assert len(a.collision) == len(b.collision)
    for pa, pb in zip(a.collision, b.collision):
        assert np.array_equal(pa.vertices, pb.vertices) and np.array_equal(pa.faces, pb.faces)
    assert a.mass == b.mass and np.array_equal(a.com, b.com) and np.array_equal(a.inertia, b.inertia)
    assert a.params == b.params and b.visual.is_watertight
    assert (a.name, b.name) == ("first", "ell")  # per-call fields are not cached
    assert t_cached < 1.0
    entries = [p for p in cache_root().iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and {f.name for f in entries[0].iterdir()} == {"mesh.npz", "record.json"}

    # another unit misses; its size warning is repeated on a hit
    with pytest.warns(AssetSizeWarning):
        c = import_mesh(path, category="tabletop", unit="in")
    with pytest.warns(AssetSizeWarning):
        c2 = import_mesh(path, category="tabletop", unit="in")
    assert len(calls) == 2 and c2.mass == c.mass != a.mass
    # a changed file misses (same name, other bytes)
    _ell_file(tmp_path, arm=34.0)
    d = import_mesh(path, category="tabletop", unit="cm")
    assert len(calls) == 3 and d.mass > a.mass
    # so does a changed argument that changes the result
    import_mesh(path, category="tabletop", unit="cm", density=600.0)
    assert len(calls) == 4

    # cache=False neither reads nor writes
    n_entries = len(list(cache_root().iterdir()))
    import_mesh(path, category="tabletop", unit="cm", cache=False)
    assert len(calls) == 5 and len(list(cache_root().iterdir())) == n_entries


@pytest.mark.parametrize("damage", ["npz", "json", "missing", "foreign"])
def test_damaged_cache_entry_is_rebuilt(tmp_path, monkeypatch, caplog, damage):
    calls = []
    real_load = mesh_import._load
    monkeypatch.setattr(mesh_import, "_load", lambda p: calls.append(p) or real_load(p))
    path = _ell_file(tmp_path)
    a = import_mesh(path, category="tabletop", unit="cm", coacd_timeout_s=0.01)
    (entry,) = list(cache_root().iterdir())
    if damage == "npz":
        (entry / "mesh.npz").write_bytes(b"not a zip file")
    elif damage == "json":
        (entry / "record.json").write_text('{"format": 1, "key"')
    elif damage == "missing":
        (entry / "mesh.npz").unlink()
    else:  # an entry from another format version
        rec = (entry / "record.json").read_text().replace('"format": 1,', '"format": 0,')
        (entry / "record.json").write_text(rec)
    with caplog.at_level(logging.WARNING, logger="grail.assets.mesh_import"):
        b = import_mesh(path, category="tabletop", unit="cm", coacd_timeout_s=0.01)
    assert len(calls) == 2 and "damaged mesh import cache entry" in caplog.text
    assert b.mass == a.mass and np.array_equal(b.visual.vertices, a.visual.vertices)
    import_mesh(path, category="tabletop", unit="cm", coacd_timeout_s=0.01)
    assert len(calls) == 2  # the rebuilt entry is good


def _star(n: int = 6, length: float = 80.0, width: float = 8.0, height: float = 40.0) -> trimesh.Trimesh:
    """n thin boxes crossing at the origin, rotated about z in 180/n degree steps, as separate
    (overlapping) bodies in one mesh."""
    boxes = []
    for k in range(n):
        b = trimesh.creation.box(extents=[length, width, height])
        b.apply_transform(trimesh.transformations.rotation_matrix(math.pi * k / n, [0, 0, 1]))
        boxes.append(b)
    return trimesh.util.concatenate(boxes)


def _star_area(n: int, length: float, width: float, samples: int = 2_000_000) -> float:
    """Exact-enough area of the star's footprint: the union of rectangles centred on the origin is
    star-shaped about it, so area = 1/2 * integral of r(theta)^2, r = farthest boundary on the ray."""
    theta = (np.arange(samples) + 0.5) * (2 * math.pi / samples)
    r = np.zeros(samples)
    for k in range(n):
        psi = theta - math.pi * k / n
        c, s = np.abs(np.cos(psi)), np.abs(np.sin(psi))
        with np.errstate(divide="ignore"):
            rk = np.minimum(np.where(c > 0, length / 2 / c, np.inf), np.where(s > 0, width / 2 / s, np.inf))
        r = np.maximum(r, rk)
    return float(0.5 * np.sum(r**2) * (2 * math.pi / samples))


@pytest.mark.parametrize("ext", ["glb", "obj"])
def test_overlapping_bodies_united_mass_counts_overlap_once(tmp_path, ext):
    star = _star()
    path = tmp_path / f"star.{ext}"
    star.export(str(path))
    a = import_mesh(path, category="furniture", unit="cm", density=500.0, coacd_timeout_s=0.01)
    true_volume = _star_area(6, 0.8, 0.08) * 0.4
    summed = 6 * 0.8 * 0.08 * 0.4
    assert true_volume < 0.85 * summed  # the overlap matters
    assert a.mass == pytest.approx(500.0 * true_volume, rel=0.01)
    assert a.visual.is_watertight and a.visual.volume == pytest.approx(true_volume, rel=0.01)
    assert any(r.startswith("united 6 bodies") for r in a.params["repairs"]), a.params["repairs"]
    # the file's six convex boxes are the collision parts (CoACD on the star takes about a minute)
    assert a.params["collision_method"] == "convex bodies" and len(a.collision) == 6
    assert all(p.is_convex for p in a.collision)
    assert np.allclose(np.min([p.bounds[0] for p in a.collision], axis=0), a.visual.bounds[0], atol=1e-9)
    assert np.allclose(np.max([p.bounds[1] for p in a.collision], axis=0), a.visual.bounds[1], atol=1e-9)


def test_rotated_union_stays_watertight():
    """The manifold3d result is converted as is (trimesh's vertex welding made it non-manifold)."""
    star = _star(length=0.8, width=0.08, height=0.4)
    star.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, [1, 0, 0]))
    u = g.union(star.split(only_watertight=False))
    assert u.is_watertight and u.is_winding_consistent
    assert u.volume == pytest.approx(_star_area(6, 0.8, 0.08) * 0.4, rel=1e-3)


def test_bodies_that_cannot_be_united(tmp_path, monkeypatch, caplog):
    def no_union(meshes):
        raise ValueError("simulated manifold3d failure")

    monkeypatch.setattr(g, "union", no_union)
    star = tmp_path / "star.stl"
    _star(n=2, length=30.0, width=5.0, height=5.0).export(str(star))  # a plus sign: overlapping
    with pytest.raises(GrailError) as e:
        import_mesh(star, category="tabletop", unit="cm", coacd_timeout_s=0.01)
    assert e.value.field == "path" and "overlapping bodies" in str(e.value) and "twice" in str(e.value)

    two = trimesh.util.concatenate([trimesh.creation.box(extents=[10, 10, 10]),
                                    trimesh.creation.box(extents=[10, 10, 10]).apply_translation([20, 0, 0])])
    apart = tmp_path / "apart.stl"
    two.export(str(apart))
    with caplog.at_level(logging.WARNING, logger="grail.assets.mesh_import"):
        a = import_mesh(apart, category="tabletop", unit="cm", density=1000.0, coacd_timeout_s=0.01)
    assert a.mass == pytest.approx(2.0, rel=1e-6)  # two disjoint 1-litre cubes
    assert any(r.startswith("kept 2 separate bodies") for r in a.params["repairs"])
    assert "kept 2 separate bodies" in caplog.text


def test_large_mesh_simplified_or_kept_valid(tmp_path):
    s = trimesh.creation.icosphere(subdivisions=5, radius=10.0)  # 20480 faces, cm
    path = tmp_path / "ball.ply"
    s.export(str(path))
    a = import_mesh(path, category="tabletop", unit="cm", max_faces=2000)
    assert a.visual.is_watertight
    assert len(a.visual.faces) <= 2000, a.params["repairs"]  # manifold3d fallback always exists
    assert any(r.startswith("simplified 20480->") for r in a.params["repairs"])
    assert a.visual.volume == pytest.approx(s.volume * 1e-6, rel=0.03)
