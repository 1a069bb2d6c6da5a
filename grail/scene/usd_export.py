"""Export a compiled MuJoCo scene to USD text (``scene/scene.usda``) for Isaac Lab.

The stage mirrors the MJCF world at the pose held in ``data``:

- stage metadata: up axis Z, ``metersPerUnit = 1``, ``kilogramsPerUnit = 1``, default prim
  ``/World``, custom layer data ``{"generator": "grail", "source": "mujoco", ...}``;
- ``/World/PhysicsScene``: a ``UsdPhysics.Scene`` with the gravity of ``model.opt.gravity``;
- one ``Xform`` per exported MuJoCo body, named from the body name (made a valid, unique USD
  identifier; unnamed bodies are ``body_<id>``). Bodies welded to the world and bodies with a
  joint are direct children of ``/World`` at their world pose (``xpos``/``xquat``), so a rigid
  body never sits under another one; a jointless body on a moving body is nested under that weld
  group's root prim (with its pose relative to it) so it moves with it. Body 0 (MuJoCo's world
  body) is ``/World/worldbody``;
- one child prim per geom, carrying the geom's body-relative pose (``geom_pos``/``geom_quat``):
  mesh -> ``UsdGeom.Mesh`` with the compiled vertices (already re-centred/re-oriented by MuJoCo,
  so the geom pose is the mesh frame), box -> ``Cube`` (size 2, scaled by the half-sizes),
  sphere -> ``Sphere``, ellipsoid -> ``Sphere`` scaled by the semi-axes, cylinder -> ``Cylinder``,
  capsule -> ``Capsule`` (axis Z), plane -> a thin ``Cube`` whose top face is the plane (100 m
  half-extent when the MJCF size is 0, i.e. infinite), height field -> ``Mesh`` of its top
  surface; SDF geoms are not exported (counted in the summary);
- ``displayColor``/``displayOpacity`` from the material rgba when the geom has a material, else
  from the geom rgba; a geom with alpha 0 is made ``invisible`` (it keeps its collider);
- physics: a geom collides iff ``contype | conaffinity != 0`` -> ``CollisionAPI`` (meshes also
  ``MeshCollisionAPI`` with approximation ``convexHull``, the shape MuJoCo itself collides with;
  height fields use ``none``, i.e. the triangle mesh) plus a physics material with the geom's
  sliding friction; a body whose first joint is free -> ``RigidBodyAPI`` + ``MassAPI`` (mass,
  centre of mass, diagonal inertia, principal axes; combined over the bodies welded to it when
  there are any); a body welded to the world -> no
  ``RigidBodyAPI``, so its colliders are static; any other jointed body (hinge/slide/ball) is
  exported as a *kinematic* rigid body at its current pose (joints are not exported; counted as
  ``kinematic_bodies``).

Skipped: bodies whose name starts with one of ``skip_body_prefixes`` (the animated character,
exported elsewhere), mocap bodies, and every descendant of a skipped body; skins are never
exported (they belong to the character; counted as ``skins_skipped``).

Output: the parent directory is created when missing; the file is written to a temporary file in
the same directory and renamed into place, so a crash never leaves half a file. The same model +
pose gives byte-identical files. ``data`` is not modified: kinematics are recomputed on a scratch
``MjData`` from ``data.qpos``/``mocap_pos``/``mocap_quat``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mujoco
import numpy as np
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdPhysics, UsdShade, Vt

import grail
from grail.errors import GrailError

__all__ = ["export_usd"]

_PLANE_HALF_THICKNESS = 0.05  # m; the plane is a box whose top face is the MuJoCo plane
_PLANE_INFINITE_HALF_EXTENT = 100.0  # m; used when the MJCF plane size is 0 (infinite)
_RESERVED = ("PhysicsScene", "PhysicsMaterials")

_G = mujoco.mjtGeom
_J = mujoco.mjtJoint
_OBJ = mujoco.mjtObj


def _quatd(q) -> Gf.Quatd:
    """MuJoCo wxyz -> normalised Gf.Quatd."""
    q = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n == 0.0:
        q, n = np.array([1.0, 0.0, 0.0, 0.0]), 1.0
    q = q / n
    return Gf.Quatd(float(q[0]), Gf.Vec3d(float(q[1]), float(q[2]), float(q[3])))


def _vec3d(v) -> Gf.Vec3d:
    return Gf.Vec3d(*(float(x) for x in v))


def _set_pose(xf: UsdGeom.Xformable, pos, quat, scale=None) -> None:
    xf.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(_vec3d(pos))
    xf.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(_quatd(quat))
    if scale is not None:
        xf.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(_vec3d(scale))


class _Names:
    """Valid, unique USD identifiers within one parent."""

    def __init__(self, reserved=()):
        self.used = set(reserved)

    def take(self, name: str, fallback: str) -> str:
        base = Tf.MakeValidIdentifier(name) if name else fallback
        out, i = base, 1
        while out in self.used:
            out = f"{base}_{i}"
            i += 1
        self.used.add(out)
        return out


def _rgba(model: mujoco.MjModel, g: int) -> np.ndarray:
    mat = int(model.geom_matid[g])
    return np.asarray(model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g], dtype=np.float64)


def _mesh_arrays(model: mujoco.MjModel, mesh_id: int):
    va, vn = int(model.mesh_vertadr[mesh_id]), int(model.mesh_vertnum[mesh_id])
    fa, fn = int(model.mesh_faceadr[mesh_id]), int(model.mesh_facenum[mesh_id])
    verts = np.asarray(model.mesh_vert[va : va + vn], dtype=np.float64)
    faces = np.asarray(model.mesh_face[fa : fa + fn], dtype=np.int64)
    return verts, faces


def _hfield_arrays(model: mujoco.MjModel, hf: int):
    nrow, ncol = int(model.hfield_nrow[hf]), int(model.hfield_ncol[hf])
    rx, ry, elev, _base = (float(s) for s in model.hfield_size[hf])
    adr = int(model.hfield_adr[hf])
    z = np.asarray(model.hfield_data[adr : adr + nrow * ncol], dtype=np.float64).reshape(nrow, ncol)
    xs = np.linspace(-rx, rx, ncol)
    ys = np.linspace(-ry, ry, nrow)
    X, Y = np.meshgrid(xs, ys)  # row index -> y, column index -> x (MuJoCo's layout)
    verts = np.stack([X.ravel(), Y.ravel(), (z * elev).ravel()], axis=1)
    r, c = np.meshgrid(np.arange(nrow - 1), np.arange(ncol - 1), indexing="ij")
    i00 = (r * ncol + c).ravel()
    i01, i10, i11 = i00 + 1, i00 + ncol, i00 + ncol + 1
    faces = np.concatenate([np.stack([i00, i01, i11], 1), np.stack([i00, i11, i10], 1)])
    return verts, faces


def _define_mesh(stage, path, verts, faces) -> UsdGeom.Mesh:
    mesh = UsdGeom.Mesh.Define(stage, path)
    pts = Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(verts, dtype=np.float32))
    mesh.CreatePointsAttr(pts)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, dtype=np.int32)))
    indices = np.ascontiguousarray(faces, dtype=np.int32).ravel()
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(indices))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    if len(verts):
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
    return mesh



def _quat2mat(q) -> np.ndarray:
    m = np.empty(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)


def _relative_pose(pos_a, quat_a, pos_b, quat_b):
    """Pose of frame b expressed in frame a (both given in the world, wxyz)."""
    ra = _quat2mat(quat_a)
    pos = ra.T @ (np.asarray(pos_b, dtype=np.float64) - np.asarray(pos_a, dtype=np.float64))
    inv = np.empty(4)
    mujoco.mju_negQuat(inv, np.asarray(quat_a, dtype=np.float64))
    quat = np.empty(4)
    mujoco.mju_mulQuat(quat, inv, np.asarray(quat_b, dtype=np.float64))
    return pos, quat


def _group_mass(model, kin, root: int, skip: np.ndarray):
    """Mass, centre of mass, principal inertia and principal axes (wxyz), in ``root``'s frame,
    of ``root`` and every exported body welded to it (they move as one USD rigid body)."""
    members = [b for b in range(root, model.nbody)
               if int(model.body_weldid[b]) == root and not skip[b]]
    if members == [root]:
        return (float(model.body_mass[root]), model.body_ipos[root], model.body_inertia[root],
                model.body_iquat[root])
    r_root = _quat2mat(kin.xquat[root])
    masses, coms, tensors = [], [], []
    for b in members:
        m = float(model.body_mass[b])
        com_w = kin.xpos[b] + _quat2mat(kin.xquat[b]) @ model.body_ipos[b]
        r = r_root.T @ _quat2mat(kin.xquat[b]) @ _quat2mat(model.body_iquat[b])
        masses.append(m)
        coms.append(r_root.T @ (com_w - kin.xpos[root]))
        tensors.append(r @ np.diag(model.body_inertia[b]) @ r.T)
    total = float(sum(masses))
    com = sum(m * c for m, c in zip(masses, coms)) / total if total > 0 else np.zeros(3)
    inertia = np.zeros((3, 3))
    for m, c, t in zip(masses, coms, tensors):
        d = c - com
        inertia += t + m * (float(d @ d) * np.eye(3) - np.outer(d, d))
    diag, axes = np.linalg.eigh(inertia)
    if np.linalg.det(axes) < 0:
        axes[:, 2] = -axes[:, 2]
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(axes).ravel())
    return total, com, np.clip(diag, 0.0, None), quat


def _check_inputs(model, data, path) -> Path:
    if not isinstance(model, mujoco.MjModel) or not isinstance(data, mujoco.MjData):
        raise GrailError("export_usd needs a mujoco.MjModel and a mujoco.MjData", field="model")
    if data.qpos.shape[0] != model.nq or data.mocap_pos.shape[0] != model.nmocap:
        raise GrailError(
            f"MjData does not belong to this MjModel (qpos {data.qpos.shape[0]} vs nq {model.nq})",
            field="data",
        )
    if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.mocap_pos))
            and np.all(np.isfinite(data.mocap_quat))):
        raise GrailError("pose contains NaN or inf", field="data.qpos")
    path = Path(path)
    if path.suffix not in (".usda", ".usd"):
        raise GrailError("USD export writes text USD: use a .usda (or .usd) file name", file=path)
    if path.exists() and path.is_dir():
        raise GrailError("output path is a directory", file=path)
    return path


def _kinematics(model: mujoco.MjModel, data: mujoco.MjData) -> mujoco.MjData:
    scratch = mujoco.MjData(model)
    scratch.qpos[:] = data.qpos
    if model.nmocap:
        scratch.mocap_pos[:] = data.mocap_pos
        scratch.mocap_quat[:] = data.mocap_quat
    mujoco.mj_kinematics(model, scratch)
    return scratch


def _skipped_bodies(model: mujoco.MjModel, prefixes: tuple[str, ...]) -> np.ndarray:
    skip = np.zeros(model.nbody, dtype=bool)
    for b in range(1, model.nbody):  # parents precede children in MuJoCo's body order
        name = mujoco.mj_id2name(model, _OBJ.mjOBJ_BODY, b) or ""
        skip[b] = (
            bool(skip[int(model.body_parentid[b])])
            or int(model.body_mocapid[b]) >= 0
            or any(name.startswith(p) for p in prefixes if p)
        )
    return skip


def export_usd(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    path: str | Path,
    *,
    skip_body_prefixes: tuple[str, ...] = ("char_",),
) -> dict:
    """Write ``path`` (.usda) describing ``model`` at the pose in ``data``; return a summary.

    The summary dict has: ``path``, ``bodies`` (exported body Xforms, world body included),
    ``geoms`` (exported geom prims), ``meshes`` (Mesh prims: mesh and height-field geoms),
    ``rigid_bodies`` (free bodies), ``kinematic_bodies`` (other jointed bodies),
    ``colliders`` (prims with CollisionAPI), ``static_colliders`` (of those, on static bodies),
    ``skipped_bodies``, ``skipped_geoms`` (unsupported types, e.g. SDF), ``skins_skipped``.
    Raises ``GrailError`` on a model/data mismatch, a non-finite pose or a bad file name; creates
    the parent directory when it does not exist.
    """
    path = _check_inputs(model, data, path)
    kin = _kinematics(model, data)
    skip = _skipped_bodies(model, tuple(skip_body_prefixes))

    layer = Sdf.Layer.CreateAnonymous(".usda")
    stage = Usd.Stage.Open(layer)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    world = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(world.GetPrim())
    layer.customLayerData = {
        "generator": "grail",
        "grail_version": grail.__version__,
        "source": "mujoco",
        "mujoco_version": mujoco.__version__,
        "quat_order": "wxyz",
        "up_axis": "Z",
    }

    scene = UsdPhysics.Scene.Define(stage, "/World/PhysicsScene")
    g = np.asarray(model.opt.gravity, dtype=np.float64)
    gmag = float(np.linalg.norm(g))
    scene.CreateGravityDirectionAttr(Gf.Vec3f(*(g / gmag)) if gmag > 0 else Gf.Vec3f(0, 0, -1))
    scene.CreateGravityMagnitudeAttr(gmag)

    materials: dict[float, UsdShade.Material] = {}

    def physics_material(friction: float) -> UsdShade.Material:
        key = round(float(friction), 9)
        if key not in materials:
            if not materials:
                UsdGeom.Scope.Define(stage, "/World/PhysicsMaterials")
            mat_path = f"/World/PhysicsMaterials/friction_{len(materials)}"
            mat = UsdShade.Material.Define(stage, mat_path)
            api = UsdPhysics.MaterialAPI.Apply(mat.GetPrim())
            api.CreateStaticFrictionAttr(key)
            api.CreateDynamicFrictionAttr(key)
            api.CreateRestitutionAttr(0.0)
            materials[key] = mat
        return materials[key]

    summary = dict(path=str(path), bodies=0, geoms=0, meshes=0, rigid_bodies=0, kinematic_bodies=0,
                   colliders=0, static_colliders=0, skipped_bodies=int(skip.sum()),
                   skipped_geoms=0, skins_skipped=int(model.nskin))

    body_names = _Names(_RESERVED)
    child_names: dict[int, _Names] = {}
    body_path: dict[int, str] = {}
    for b in range(model.nbody):
        if skip[b]:
            continue
        raw = "worldbody" if b == 0 else (mujoco.mj_id2name(model, _OBJ.mjOBJ_BODY, b) or "")
        root = int(model.body_weldid[b])
        static = b == 0 or root == 0
        if static or root == b:  # world-welded bodies and weld-group roots: flat, world pose
            bpath = f"/World/{body_names.take(raw, f'body_{b}')}"
            pos, quat = kin.xpos[b], kin.xquat[b]
        else:  # welded to a moving body: a child of that group's root, so it moves with it
            names = child_names.setdefault(root, _Names())
            bpath = f"{body_path[root]}/{names.take(raw, f'body_{b}')}"
            pos, quat = _relative_pose(kin.xpos[root], kin.xquat[root], kin.xpos[b], kin.xquat[b])
        body_path[b] = bpath
        bxf = UsdGeom.Xform.Define(stage, bpath)
        _set_pose(bxf, pos, quat)
        summary["bodies"] += 1

        jnum, jadr = int(model.body_jntnum[b]), int(model.body_jntadr[b])
        if not static and root == b:
            prim = bxf.GetPrim()
            rb = UsdPhysics.RigidBodyAPI.Apply(prim)
            free = jnum > 0 and int(model.jnt_type[jadr]) == _J.mjJNT_FREE
            if free:
                summary["rigid_bodies"] += 1
            else:
                rb.CreateKinematicEnabledAttr(True)
                summary["kinematic_bodies"] += 1
            m, com, diag, paxes = _group_mass(model, kin, b, skip)
            mass = UsdPhysics.MassAPI.Apply(prim)
            mass.CreateMassAttr(m)
            mass.CreateCenterOfMassAttr(Gf.Vec3f(*map(float, com)))
            mass.CreateDiagonalInertiaAttr(Gf.Vec3f(*map(float, diag)))
            q = _quatd(paxes)
            mass.CreatePrincipalAxesAttr(Gf.Quatf(q.GetReal(), Gf.Vec3f(q.GetImaginary())))

        geom_names = _Names()
        gadr, gnum = int(model.body_geomadr[b]), int(model.body_geomnum[b])
        for gi in range(gadr, gadr + gnum) if gadr >= 0 else ():
            gtype = int(model.geom_type[gi])
            raw = mujoco.mj_id2name(model, _OBJ.mjOBJ_GEOM, gi) or ""
            gpath = f"{bpath}/{geom_names.take(raw, f'geom_{gi}')}"
            size = np.asarray(model.geom_size[gi], dtype=np.float64)
            pos, quat = model.geom_pos[gi], model.geom_quat[gi]
            scale = None
            is_mesh = False
            if gtype == _G.mjGEOM_MESH:
                verts, faces = _mesh_arrays(model, int(model.geom_dataid[gi]))
                gprim = _define_mesh(stage, gpath, verts, faces)
                is_mesh = True
            elif gtype == _G.mjGEOM_HFIELD:
                verts, faces = _hfield_arrays(model, int(model.geom_dataid[gi]))
                gprim = _define_mesh(stage, gpath, verts, faces)
                is_mesh = True
            elif gtype == _G.mjGEOM_BOX:
                gprim = UsdGeom.Cube.Define(stage, gpath)
                gprim.CreateSizeAttr(2.0)
                gprim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-1, -1, -1), Gf.Vec3f(1, 1, 1)]))
                scale = size
            elif gtype == _G.mjGEOM_PLANE:
                gprim = UsdGeom.Cube.Define(stage, gpath)
                gprim.CreateSizeAttr(2.0)
                gprim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-1, -1, -1), Gf.Vec3f(1, 1, 1)]))
                hx = size[0] if size[0] > 0 else _PLANE_INFINITE_HALF_EXTENT
                hy = size[1] if size[1] > 0 else _PLANE_INFINITE_HALF_EXTENT
                scale = (hx, hy, _PLANE_HALF_THICKNESS)
                rot = np.empty(9)
                mujoco.mju_quat2Mat(rot, np.asarray(quat, dtype=np.float64))
                pos = np.asarray(pos) - rot.reshape(3, 3)[:, 2] * _PLANE_HALF_THICKNESS
            elif gtype in (_G.mjGEOM_SPHERE, _G.mjGEOM_ELLIPSOID):
                gprim = UsdGeom.Sphere.Define(stage, gpath)
                if gtype == _G.mjGEOM_SPHERE:
                    gprim.CreateRadiusAttr(float(size[0]))
                    r = float(size[0])
                else:
                    gprim.CreateRadiusAttr(1.0)
                    scale, r = size, 1.0
                gprim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-r, -r, -r), Gf.Vec3f(r, r, r)]))
            elif gtype in (_G.mjGEOM_CYLINDER, _G.mjGEOM_CAPSULE):
                cls = UsdGeom.Cylinder if gtype == _G.mjGEOM_CYLINDER else UsdGeom.Capsule
                gprim = cls.Define(stage, gpath)
                r, h = float(size[0]), 2.0 * float(size[1])
                gprim.CreateRadiusAttr(r)
                gprim.CreateHeightAttr(h)  # Capsule: length of the spine, caps excluded
                gprim.CreateAxisAttr(UsdGeom.Tokens.z)
                hz = h / 2 + (r if gtype == _G.mjGEOM_CAPSULE else 0.0)
                gprim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-r, -r, -hz), Gf.Vec3f(r, r, hz)]))
            else:  # SDF and anything newer: no USD counterpart here
                summary["skipped_geoms"] += 1
                continue
            _set_pose(gprim, pos, quat, scale)
            summary["geoms"] += 1
            summary["meshes"] += int(is_mesh)

            rgba = _rgba(model, gi)
            gprim.CreateDisplayColorAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, rgba[:3]))]))
            gprim.CreateDisplayOpacityAttr(Vt.FloatArray([float(rgba[3])]))
            if rgba[3] <= 0.0:
                gprim.CreateVisibilityAttr(UsdGeom.Tokens.invisible)

            if int(model.geom_contype[gi]) | int(model.geom_conaffinity[gi]):
                p = gprim.GetPrim()
                UsdPhysics.CollisionAPI.Apply(p)
                if is_mesh:
                    approx = "convexHull" if gtype == _G.mjGEOM_MESH else "none"
                    UsdPhysics.MeshCollisionAPI.Apply(p).CreateApproximationAttr(approx)
                binding = UsdShade.MaterialBindingAPI.Apply(p)
                binding.Bind(physics_material(model.geom_friction[gi][0]),
                             UsdShade.Tokens.weakerThanDescendants, "physics")
                summary["colliders"] += 1
                summary["static_colliders"] += int(static)

    text = layer.ExportToString()
    _atomic_write(path, text)
    return summary


def _atomic_write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GrailError(f"cannot create the output directory: {exc}", file=path.parent) from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
