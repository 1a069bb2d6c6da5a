"""grail.scene.usd_export: a small MJCF scene round-trips into a USD stage Isaac Lab can load."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest
import trimesh
from pxr import Sdf, Usd, UsdGeom, UsdPhysics

from conftest import SCENES
from grail.errors import GrailError
from grail.scene.usd_export import export_usd

MJCF = """
<mujoco model="usd_export_test">
  <compiler meshdir="{meshdir}"/>
  <option gravity="0 0 -9.81"/>
  <asset>
    <mesh name="tetra" file="tetra.obj"/>
    <material name="wood" rgba="0.6 0.4 0.2 1"/>
  </asset>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 0.1" rgba="0.8 0.8 0.8 1"/>
    <body name="table" pos="1 0 0.4" euler="0 0 30">
      <geom name="table top" type="box" size="0.4 0.3 0.02" material="wood"/>
      <geom name="table_decal" type="box" size="0.1 0.1 0.001" pos="0 0 0.021"
            contype="0" conaffinity="0" rgba="1 0 0 1"/>
    </body>
    <body name="tetra_obj" pos="0.9 0.1 0.6" euler="10 20 30">
      <freejoint/>
      <geom name="tetra_geom" type="mesh" mesh="tetra" pos="0.01 0.02 0.03" euler="5 0 15"
            mass="0.3" rgba="0 0.5 1 1"/>
    </body>
    <body name="ball" pos="0 1 0.5">
      <freejoint/>
      <geom name="ball" type="sphere" size="0.05" mass="0.2"/>
    </body>
    <body name="can" pos="0.5 -0.5 0.3" euler="90 0 0">
      <freejoint/>
      <geom type="cylinder" size="0.03 0.06" mass="0.15"/>
      <body name="can_lid" pos="0 0 0.07">
        <geom type="cylinder" size="0.03 0.005" mass="0.01"/>
      </body>
    </body>
    <body name="post" pos="-1 0 0.5">
      <geom name="post" type="capsule" size="0.04 0.3"/>
      <geom name="post_guard" type="box" size="0.05 0.05 0.05" pos="0 0 0.4" rgba="0 0 0 0"/>
    </body>
    <body name="door" pos="2 0 1">
      <joint name="door_hinge" type="hinge" axis="0 0 1"/>
      <geom type="box" size="0.4 0.02 0.9" mass="5"/>
    </body>
    <body name="char_pelvis" mocap="true" pos="0 0 0.9">
      <geom type="sphere" size="0.1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
</mujoco>
"""


@pytest.fixture()
def scene(tmp_path):
    verts = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.08, 0.0], [0.0, 0.0, 0.06]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    trimesh.Trimesh(verts, faces, process=False).export(tmp_path / "tetra.obj")
    model = mujoco.MjModel.from_xml_string(MJCF.format(meshdir=tmp_path))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def _world(prim) -> np.ndarray:
    return np.array(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(Usd.TimeCode.Default()))


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """USD matrices act on row vectors: p_world = [p, 1] @ M."""
    return (np.c_[pts, np.ones(len(pts))] @ m)[:, :3]


def test_stage_metadata_and_layout(scene, tmp_path):
    model, data = scene
    out = tmp_path / "scene" / "scene.usda"
    summary = export_usd(model, data, out)
    stage = Usd.Stage.Open(str(out))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert UsdPhysics.GetStageKilogramsPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == Sdf.Path("/World")
    data_ = stage.GetRootLayer().customLayerData
    assert data_["generator"] == "grail" and data_["source"] == "mujoco"
    assert data_["quat_order"] == "wxyz"

    scenes = [p for p in stage.Traverse() if p.IsA(UsdPhysics.Scene)]
    assert len(scenes) == 1
    ps = UsdPhysics.Scene(scenes[0])
    assert ps.GetGravityMagnitudeAttr().Get() == pytest.approx(9.81)
    assert tuple(ps.GetGravityDirectionAttr().Get()) == pytest.approx((0, 0, -1))

    # the character (mocap, char_ prefix) is not exported; names are sanitised
    assert not any("char" in str(p.GetPath()) for p in stage.Traverse())
    assert stage.GetPrimAtPath("/World/table/table_top").IsA(UsdGeom.Cube)
    assert stage.GetPrimAtPath("/World/can/can_lid").IsValid()  # welded child nested in its body
    assert summary["skipped_bodies"] == 1
    assert summary["meshes"] == 1
    assert summary["rigid_bodies"] == 3
    assert summary["kinematic_bodies"] == 1  # the hinged door: joints are not exported
    assert summary["bodies"] == model.nbody - 1
    # floor, table top, tetra, ball, can, lid, post, post_guard, door; the decal is visual only
    assert summary["colliders"] == 9
    assert summary["static_colliders"] == 4

    text = out.read_text()
    assert text.startswith("#usda 1.0")
    assert Sdf.Layer.OpenAsAnonymous(str(out)) is not None


def test_mesh_points_match_mujoco_world_vertices(scene, tmp_path):
    model, data = scene
    out = tmp_path / "scene.usda"
    export_usd(model, data, out)
    stage = Usd.Stage.Open(str(out))
    prim = stage.GetPrimAtPath("/World/tetra_obj/tetra_geom")
    assert prim.IsA(UsdGeom.Mesh)
    mesh = UsdGeom.Mesh(prim)
    pts = np.array(mesh.GetPointsAttr().Get(), dtype=np.float64)

    g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "tetra_geom")
    m = int(model.geom_dataid[g])
    va, vn = model.mesh_vertadr[m], model.mesh_vertnum[m]
    fa, fn = model.mesh_faceadr[m], model.mesh_facenum[m]
    local = model.mesh_vert[va : va + vn].astype(np.float64)
    expected = local @ data.geom_xmat[g].reshape(3, 3).T + data.geom_xpos[g]
    np.testing.assert_allclose(_apply(_world(prim), pts), expected, atol=1e-5)
    indices = list(mesh.GetFaceVertexIndicesAttr().Get())
    assert indices == model.mesh_face[fa : fa + fn].ravel().tolist()
    assert set(mesh.GetFaceVertexCountsAttr().Get()) == {3}
    assert prim.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdPhysics.MeshCollisionAPI(prim).GetApproximationAttr().Get() == "convexHull"
    color = UsdGeom.Gprim(prim).GetDisplayColorAttr().Get()[0]
    assert tuple(color) == pytest.approx((0, 0.5, 1))


def test_primitives_match_mujoco_geometry(scene, tmp_path):
    model, data = scene
    out = tmp_path / "scene.usda"
    export_usd(model, data, out)
    stage = Usd.Stage.Open(str(out))

    # box corners in the world match MuJoCo's (rotated table)
    g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "table top")
    prim = stage.GetPrimAtPath("/World/table/table_top")
    cube = UsdGeom.Cube(prim)
    half = cube.GetSizeAttr().Get() / 2
    signs = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
    corners_usd = _apply(_world(prim), signs * half)
    rot = data.geom_xmat[g].reshape(3, 3)
    corners_mj = (signs * model.geom_size[g]) @ rot.T + data.geom_xpos[g]
    np.testing.assert_allclose(corners_usd, corners_mj, atol=1e-6)
    assert tuple(cube.GetDisplayColorAttr().Get()[0]) == pytest.approx((0.6, 0.4, 0.2))  # material

    # sphere
    ball = UsdGeom.Sphere(stage.GetPrimAtPath("/World/ball/ball"))
    assert ball.GetRadiusAttr().Get() == pytest.approx(0.05)
    ball_w = _world(ball.GetPrim())[3, :3]
    np.testing.assert_allclose(ball_w, data.xpos[model.body("ball").id], atol=1e-9)

    # capsule: USD height is the spine (caps excluded) = 2 * MuJoCo half-length
    cap_prim = stage.GetPrimAtPath("/World/post/post")
    cap = UsdGeom.Capsule(cap_prim)
    assert cap_prim.IsA(UsdGeom.Capsule)
    assert (cap.GetRadiusAttr().Get(), cap.GetHeightAttr().Get()) == pytest.approx((0.04, 0.6))
    assert cap.GetAxisAttr().Get() == "Z"

    # cylinder axis follows the body rotation (euler 90 about x: local z -> world -y)
    can_children = stage.GetPrimAtPath("/World/can").GetChildren()
    cyl_prims = [p for p in can_children if p.IsA(UsdGeom.Cylinder)]
    assert len(cyl_prims) == 1
    cyl = UsdGeom.Cylinder(cyl_prims[0])
    assert (cyl.GetRadiusAttr().Get(), cyl.GetHeightAttr().Get()) == pytest.approx((0.03, 0.12))
    axis_w = _world(cyl_prims[0])[2, :3]
    np.testing.assert_allclose(axis_w, [0, -1, 0], atol=1e-9)

    # floor: a thin box whose top face is z = 0
    floor = stage.GetPrimAtPath("/World/worldbody/floor")
    top = _apply(_world(floor), np.array([[0.0, 0.0, 1.0]]))[0]
    assert top[2] == pytest.approx(0.0, abs=1e-9)
    assert floor.HasAPI(UsdPhysics.CollisionAPI)


def test_physics_apis(scene, tmp_path):
    model, data = scene
    out = tmp_path / "scene.usda"
    export_usd(model, data, out)
    stage = Usd.Stage.Open(str(out))

    for name in ("tetra_obj", "ball"):
        prim = stage.GetPrimAtPath(f"/World/{name}")
        assert prim.HasAPI(UsdPhysics.RigidBodyAPI) and prim.HasAPI(UsdPhysics.MassAPI)
        b = model.body(name).id
        mass = UsdPhysics.MassAPI(prim)
        assert mass.GetMassAttr().Get() == pytest.approx(model.body_mass[b])
        inertia = tuple(mass.GetDiagonalInertiaAttr().Get())
        assert inertia == pytest.approx(tuple(model.body_inertia[b]), rel=1e-6)
        com = tuple(mass.GetCenterOfMassAttr().Get())
        assert com == pytest.approx(tuple(model.body_ipos[b]), abs=1e-7)
        assert not UsdPhysics.RigidBodyAPI(prim).GetKinematicEnabledAttr().Get()
    assert model.body_mass[model.body("tetra_obj").id] == pytest.approx(0.3)

    # a body welded to a free body adds its mass to that rigid body
    can = stage.GetPrimAtPath("/World/can")
    assert UsdPhysics.MassAPI(can).GetMassAttr().Get() == pytest.approx(0.16)
    assert not stage.GetPrimAtPath("/World/can/can_lid").HasAPI(UsdPhysics.RigidBodyAPI)

    # static bodies: colliders without a rigid body
    for path in ("/World/table", "/World/post", "/World/worldbody"):
        assert not stage.GetPrimAtPath(path).HasAPI(UsdPhysics.RigidBodyAPI)
    assert stage.GetPrimAtPath("/World/table/table_top").HasAPI(UsdPhysics.CollisionAPI)

    # a jointed (non-free) body is a kinematic rigid body at its current pose
    door = stage.GetPrimAtPath("/World/door")
    assert UsdPhysics.RigidBodyAPI(door).GetKinematicEnabledAttr().Get() is True

    # alpha-0 geom: an invisible collider (MuJoCo still collides with it)
    guard = stage.GetPrimAtPath("/World/post/post_guard")
    assert guard.HasAPI(UsdPhysics.CollisionAPI)
    assert UsdGeom.Imageable(guard).ComputeVisibility() == UsdGeom.Tokens.invisible

    # visual-only geom: no collider
    decal = stage.GetPrimAtPath("/World/table/table_decal")
    assert decal.IsValid() and not decal.HasAPI(UsdPhysics.CollisionAPI)


def test_export_is_deterministic_and_does_not_touch_data(scene, tmp_path):
    model, data = scene
    out = tmp_path / "scene.usda"
    qpos = data.qpos.copy()
    data.xpos[:] = 0.0  # stale derived state in the caller's data must not matter
    export_usd(model, data, out)
    first = out.read_bytes()
    export_usd(model, data, out)
    assert out.read_bytes() == first
    np.testing.assert_array_equal(data.qpos, qpos)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_directory_is_created_and_bad_names_fail(scene, tmp_path):
    model, data = scene
    out = tmp_path / "does" / "not" / "exist" / "scene.usda"
    export_usd(model, data, out)
    assert out.is_file()
    with pytest.raises(GrailError, match=r"\.usda"):
        export_usd(model, data, tmp_path / "scene.usdc")
    other = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
    with pytest.raises(GrailError, match="does not belong"):
        export_usd(other, data, tmp_path / "x.usda")


def test_height_field_surface_matches_mujoco(tmp_path):
    xml = """<mujoco><asset><hfield name="h" nrow="4" ncol="6" size="1 2 0.5 0.1"/></asset>
    <worldbody><geom name="hf" type="hfield" hfield="h" pos="0.3 0.2 0"/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    model.hfield_data[:] = np.random.default_rng(0).random(model.hfield_data.size)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    out = tmp_path / "hf.usda"
    assert export_usd(model, data, out)["meshes"] == 1
    stage = Usd.Stage.Open(str(out))
    prim = stage.GetPrimAtPath("/World/worldbody/hf")
    pts = _apply(_world(prim), np.array(UsdGeom.Mesh(prim).GetPointsAttr().Get(), dtype=np.float64))
    assert len(pts) == 24
    geomid = np.array([-1], dtype=np.int32)
    centre = np.array([0.3, 0.2])
    for p in pts:  # cast a ray down onto MuJoCo's height field just inside each vertex
        xy = p[:2] - np.sign(p[:2] - centre) * 1e-6
        dist = mujoco.mj_ray(model, data, np.array([xy[0], xy[1], 5.0]), np.array([0, 0, -1.0]),
                             None, 1, -1, geomid)
        assert 5.0 - dist == pytest.approx(p[2], abs=1e-4)


def test_welded_group_mass_matches_mujoco_fusestatic(tmp_path):
    xml = """<mujoco><compiler {flag}/><worldbody>
      <body name="can" pos="0.5 -0.5 0.3" euler="90 20 0"><freejoint/>
        <geom type="box" size="0.03 0.05 0.06" mass="0.15"/>
        <body name="lid" pos="0.01 0.02 0.07" euler="10 30 0">
          <geom type="box" size="0.03 0.01 0.005" mass="0.04"/></body></body>
    </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml.format(flag=""))
    fused = mujoco.MjModel.from_xml_string(xml.format(flag='fusestatic="true"'))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    export_usd(model, data, tmp_path / "can.usda")
    stage = Usd.Stage.Open(str(tmp_path / "can.usda"))
    mass = UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/can"))
    assert mass.GetMassAttr().Get() == pytest.approx(fused.body_mass[1])
    com = np.array(mass.GetCenterOfMassAttr().Get())
    np.testing.assert_allclose(com, fused.body_ipos[1], atol=1e-7)

    def tensor(quat, diag):
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, np.asarray(quat, dtype=np.float64))
        rot = rot.reshape(3, 3)
        return rot @ np.diag(diag) @ rot.T

    pa = mass.GetPrincipalAxesAttr().Get()
    quat = [pa.GetReal(), *pa.GetImaginary()]
    got = tensor(quat, np.array(mass.GetDiagonalInertiaAttr().Get(), dtype=np.float64))
    np.testing.assert_allclose(got, tensor(fused.body_iquat[1], fused.body_inertia[1]), atol=1e-9)


def test_default_skip_prefix_is_char_underscore(tmp_path):
    """``char_`` (the character) is skipped with its descendants; ``chair`` is scene furniture."""
    xml = """<mujoco><worldbody>
      <body name="chair" pos="1 0 0.25"><geom type="box" size="0.2 0.2 0.25"/></body>
      <body name="char_pelvis" pos="0 0 0.9"><freejoint/><geom type="sphere" size="0.1"/>
        <body name="char_spine" pos="0 0 0.2"><geom type="sphere" size="0.05"/></body></body>
    </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    out = tmp_path / "chair.usda"
    summary = export_usd(model, data, out)
    stage = Usd.Stage.Open(str(out))
    assert stage.GetPrimAtPath("/World/chair").IsValid()
    assert stage.GetPrimAtPath("/World/chair").GetChildren()[0].IsA(UsdGeom.Cube)
    names = {p.GetName() for p in stage.Traverse()}
    assert not names & {"char_pelvis", "char_spine"}
    assert summary["skipped_bodies"] == 2
    assert summary["bodies"] == 2  # worldbody and chair
    assert summary["rigid_bodies"] == 0


def test_composed_scene_rigid_bodies_match_mujoco(tmp_path):
    """A real composed scene: every rigid body's world pose and centre of mass in scene.usda
    match scene.xml compiled by MuJoCo."""
    from grail.rotations import matrix_from_quat
    from grail.scene.compose import ComposeOptions, compose_sequence

    seq, _ = compose_sequence(SCENES / "pickup_table.yaml", 0, tmp_path, ComposeOptions(96, 54))
    scene_dir = seq.path / "scene"
    model = mujoco.MjModel.from_xml_path(str(scene_dir / "scene.xml"))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    stage = Usd.Stage.Open(str(scene_dir / "scene.usda"))

    rigid = {p.GetName(): p for p in stage.Traverse() if p.HasAPI(UsdPhysics.RigidBodyAPI)}
    moving_roots = {model.body(b).name for b in range(1, model.nbody)
                    if model.body_weldid[b] == b}
    assert rigid and set(rigid) == moving_roots  # table and target are free bodies
    for name, prim in rigid.items():
        b = model.body(name).id
        world = _world(prim)
        np.testing.assert_allclose(world[3, :3], data.xpos[b], atol=1e-6)
        np.testing.assert_allclose(world[:3, :3].T, matrix_from_quat(data.xquat[b]), atol=1e-6)

        group = [g for g in range(model.nbody) if model.body_weldid[g] == b]
        masses = model.body_mass[group]
        com_mj = (masses[:, None] * data.xipos[group]).sum(axis=0) / masses.sum()
        mass = UsdPhysics.MassAPI(prim)
        com_local = np.array(mass.GetCenterOfMassAttr().Get(), dtype=np.float64)
        np.testing.assert_allclose(_apply(world, com_local[None])[0], com_mj, atol=1e-6)
        assert mass.GetMassAttr().Get() == pytest.approx(masses.sum())
