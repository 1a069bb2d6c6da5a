"""Mesh import: units, formats, repair, rejection, size rule, convex decomposition."""

from __future__ import annotations

import time
import warnings

import mujoco
import numpy as np
import pytest
import trimesh

from grail.assets import AssetSizeWarning, import_mesh, make_object, mjcf_fragments, write_asset
from grail.assets.mesh_import import convex_parts
from grail.errors import GrailError

MM = 1e-3
BOX_M = np.array([0.20, 0.10, 0.05])  # a 20 x 10 x 5 cm box


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
    assert e.value.field == "mesh" and e.value.file == str(path)


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
    assert e.value.field == "mesh" and "watertight" in str(e.value)


@pytest.mark.parametrize("ext", ["obj", "glb", "stl", "ply"])
def test_garbage_rejected(tmp_path, ext):
    path = tmp_path / f"garbage.{ext}"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(GrailError) as e:
        import_mesh(path, category="tabletop", unit="m")
    assert e.value.file == str(path) and e.value.field in ("file", "mesh")
    assert str(e.value).startswith(str(path) + ": ")


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
        assert e.value.field == "extension"
    with pytest.raises(GrailError) as e:
        import_mesh(tmp_path / "missing.obj", category="tabletop", unit="cm")
    assert e.value.field == "path"


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
    a_ = trimesh.creation.box(extents=[30, 10, 10]).apply_translation([15, 5, 5])
    b_ = trimesh.creation.box(extents=[10, 30, 10]).apply_translation([5, 15, 5])
    ell = trimesh.boolean.union([a_, b_], engine="manifold")
    path = tmp_path / "ell.obj"
    ell.export(str(path))
    a = import_mesh(path, category="tabletop", unit="cm", density=500.0)
    assert a.params["collision_method"] == "coacd"
    assert 2 <= len(a.collision) <= 16
    assert all(p.is_convex for p in a.collision)
    assert sum(p.volume for p in a.collision) == pytest.approx(a.visual.volume, rel=0.05)
    assert a.mass == pytest.approx(500.0 * 0.005, rel=1e-6)  # 0.3*0.1*0.1 + 0.1*0.2*0.1 m^3

    # MuJoCo loads it as convex mesh geoms and it settles flat on the plane
    info = write_asset(a, tmp_path / "out")
    am, body = mjcf_fragments(info, pos=(0, 0, 0.02))
    xml = (f'<mujoco><asset>{am}</asset><worldbody><geom type="plane" size="2 2 0.1"/>{body}</worldbody></mujoco>')
    (tmp_path / "out" / "s.xml").write_text(xml)
    m = mujoco.MjModel.from_xml_path(str(tmp_path / "out" / "s.xml"))
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


def test_convex_hull_fallback_when_coacd_fails(caplog, monkeypatch):
    import coacd

    def boom(*args, **kwargs):
        raise RuntimeError("simulated CoACD failure")

    monkeypatch.setattr(coacd, "run_coacd", boom)
    parts, how = convex_parts(make_object("mug").visual)
    assert how == "hull" and len(parts) == 1 and parts[0].is_convex
    assert "convex hull" in caplog.text


def test_large_mesh_simplified_or_kept_valid(tmp_path):
    s = trimesh.creation.icosphere(subdivisions=5, radius=10.0)  # 20480 faces, cm
    path = tmp_path / "ball.ply"
    s.export(str(path))
    a = import_mesh(path, category="tabletop", unit="cm", max_faces=2000)
    assert a.visual.is_watertight
    assert len(a.visual.faces) <= 2000, a.params["repairs"]  # manifold3d fallback always exists
    assert any(r.startswith("simplified 20480->") for r in a.params["repairs"])
    assert a.visual.volume == pytest.approx(s.volume * 1e-6, rel=0.03)
