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

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import mujoco
import numpy as np
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdPhysics, UsdShade, Vt

import grail
from grail.atomic import write_text_atomic
from grail.errors import GrailError
from grail.rotations import matrix_from_quat, quat_from_matrix

__all__ = ["export_usd"]

_PLANE_HALF_THICKNESS = 0.05  # m; the plane is a box whose top face is the MuJoCo plane
_PLANE_INFINITE_HALF_EXTENT = 100.0  # m; used when the MJCF plane size is 0 (infinite)
_RESERVED = ("PhysicsScene", "PhysicsMaterials")

_G = mujoco.mjtGeom
_J = mujoco.mjtJoint
_OBJ = mujoco.mjtObj


# -- small USD value helpers ---------------------------------------------------------------------


def _quatd(q: np.ndarray) -> Gf.Quatd:
    """MuJoCo wxyz -> normalised Gf.Quatd (identity for a zero or non-finite quaternion, so a
    degenerate input never writes NaN into the stage)."""
    q = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n == 0.0:
        q, n = np.array([1.0, 0.0, 0.0, 0.0]), 1.0
    q = q / n
    return Gf.Quatd(float(q[0]), Gf.Vec3d(float(q[1]), float(q[2]), float(q[3])))


def _vec3d(v: np.ndarray) -> Gf.Vec3d:
    """numpy 3-vector -> Gf.Vec3d (USD's Python bindings reject numpy scalars)."""
    return Gf.Vec3d(*(float(x) for x in v))


def _vec3f(v: np.ndarray) -> Gf.Vec3f:
    """numpy 3-vector -> Gf.Vec3f, for float-typed schema attributes (colors, mass properties)."""
    return Gf.Vec3f(*map(float, v))


def _set_pose(xf: UsdGeom.Xformable, pos: np.ndarray, quat: np.ndarray,
              scale: np.ndarray | tuple[float, ...] | None = None) -> None:
    """Translate, orient (, scale) in double precision: the order MuJoCo composes a frame in."""
    xf.AddTranslateOp(UsdGeom.XformOp.PrecisionDouble).Set(_vec3d(pos))
    xf.AddOrientOp(UsdGeom.XformOp.PrecisionDouble).Set(_quatd(quat))
    if scale is not None:
        xf.AddScaleOp(UsdGeom.XformOp.PrecisionDouble).Set(_vec3d(scale))


def _box_extent(lo: float, hi: float) -> Vt.Vec3fArray:
    """Extent of an axis-aligned cube [lo, hi]^3."""
    return Vt.Vec3fArray([Gf.Vec3f(lo, lo, lo), Gf.Vec3f(hi, hi, hi)])


class _Names:
    """Valid, unique USD identifiers within one parent (MuJoCo names may hold spaces, repeat
    across bodies, or be empty)."""

    def __init__(self, reserved: tuple[str, ...] = ()):
        self.used = set(reserved)

    def take(self, name: str, fallback: str) -> str:
        base = Tf.MakeValidIdentifier(name) if name else fallback
        out, i = base, 1
        while out in self.used:
            out = f"{base}_{i}"
            i += 1
        self.used.add(out)
        return out


# -- input checks and scratch kinematics ---------------------------------------------------------


def _check_inputs(model: mujoco.MjModel, data: mujoco.MjData, path: str | Path) -> Path:
    """Fail early, with a GrailError, on anything that would give a wrong or partial file."""
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
    """World poses recomputed on a scratch MjData: the caller's derived state may be stale and
    must not be modified."""
    scratch = mujoco.MjData(model)
    scratch.qpos[:] = data.qpos
    if model.nmocap:
        scratch.mocap_pos[:] = data.mocap_pos
        scratch.mocap_quat[:] = data.mocap_quat
    mujoco.mj_kinematics(model, scratch)
    return scratch


def _skipped_bodies(model: mujoco.MjModel, prefixes: tuple[str, ...]) -> np.ndarray:
    """Bodies not exported: name prefix match (the character), mocap, or a skipped ancestor."""
    skip = np.zeros(model.nbody, dtype=bool)
    for b in range(1, model.nbody):  # parents precede children in MuJoCo's body order
        name = mujoco.mj_id2name(model, _OBJ.mjOBJ_BODY, b) or ""
        skip[b] = (
            bool(skip[int(model.body_parentid[b])])
            or int(model.body_mocapid[b]) >= 0
            or any(name.startswith(p) for p in prefixes if p)
        )
    return skip


# -- export context ------------------------------------------------------------------------------


@dataclass
class _Export:
    """State shared by the steps of one export: inputs, the stage being built, and the tallies."""

    model: mujoco.MjModel
    kin: mujoco.MjData
    skip: np.ndarray
    stage: Usd.Stage
    summary: dict
    materials: dict[float, UsdShade.Material] = field(default_factory=dict)
    body_names: _Names = field(default_factory=lambda: _Names(_RESERVED))
    child_names: dict[int, _Names] = field(default_factory=dict)
    body_path: dict[int, str] = field(default_factory=dict)


def _new_summary(path: Path, model: mujoco.MjModel, skip: np.ndarray) -> dict:
    """The summary dict ``export_usd`` returns, with every counter at its starting value."""
    return dict(path=str(path), bodies=0, geoms=0, meshes=0, rigid_bodies=0, kinematic_bodies=0,
                colliders=0, static_colliders=0, skipped_bodies=int(skip.sum()),
                skipped_geoms=0, skins_skipped=int(model.nskin))


# -- stage setup ---------------------------------------------------------------------------------


def _new_stage() -> tuple[Sdf.Layer, Usd.Stage]:
    """In-memory stage with Isaac Lab's conventions (Z up, SI units, ``/World`` default prim)
    and provenance in the layer metadata; written to disk only once complete."""
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
    return layer, stage


def _define_physics_scene(stage: Usd.Stage, model: mujoco.MjModel) -> None:
    """``/World/PhysicsScene`` with MuJoCo's gravity (straight down when gravity is zero, since
    USD needs a direction)."""
    scene = UsdPhysics.Scene.Define(stage, "/World/PhysicsScene")
    g = np.asarray(model.opt.gravity, dtype=np.float64)
    gmag = float(np.linalg.norm(g))
    scene.CreateGravityDirectionAttr(Gf.Vec3f(*(g / gmag)) if gmag > 0 else Gf.Vec3f(0, 0, -1))
    scene.CreateGravityMagnitudeAttr(gmag)


# -- bodies --------------------------------------------------------------------------------------


def _relative_pose(pos_a: np.ndarray, quat_a: np.ndarray, pos_b: np.ndarray,
                   quat_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose of frame b expressed in frame a (both given in the world, wxyz)."""
    ra = matrix_from_quat(quat_a)
    pos = ra.T @ (np.asarray(pos_b, dtype=np.float64) - np.asarray(pos_a, dtype=np.float64))
    inv = np.empty(4)
    mujoco.mju_negQuat(inv, np.asarray(quat_a, dtype=np.float64))
    quat = np.empty(4)
    mujoco.mju_mulQuat(quat, inv, np.asarray(quat_b, dtype=np.float64))
    return pos, quat


def _is_static(model: mujoco.MjModel, b: int) -> bool:
    """World-welded bodies never move: their colliders are static (no RigidBodyAPI)."""
    return b == 0 or int(model.body_weldid[b]) == 0


def _place_body(ctx: _Export, b: int) -> UsdGeom.Xform:
    """Define body ``b``'s Xform. World-welded bodies and weld-group roots go flat under
    ``/World`` at their world pose, so no rigid body is nested in another; a body welded to a
    moving body goes under that group's root, at its relative pose, so it moves with it."""
    model, kin = ctx.model, ctx.kin
    raw = "worldbody" if b == 0 else (mujoco.mj_id2name(model, _OBJ.mjOBJ_BODY, b) or "")
    root = int(model.body_weldid[b])
    if _is_static(model, b) or root == b:
        bpath = f"/World/{ctx.body_names.take(raw, f'body_{b}')}"
        pos, quat = kin.xpos[b], kin.xquat[b]
    else:
        names = ctx.child_names.setdefault(root, _Names())
        bpath = f"{ctx.body_path[root]}/{names.take(raw, f'body_{b}')}"
        pos, quat = _relative_pose(kin.xpos[root], kin.xquat[root], kin.xpos[b], kin.xquat[b])
    ctx.body_path[b] = bpath
    bxf = UsdGeom.Xform.Define(ctx.stage, bpath)
    _set_pose(bxf, pos, quat)
    ctx.summary["bodies"] += 1
    return bxf


# -- mass fusion ---------------------------------------------------------------------------------


def _weld_members(model: mujoco.MjModel, root: int, skip: np.ndarray) -> list[int]:
    """``root`` and every exported body welded to it: they move as one USD rigid body."""
    return [b for b in range(root, model.nbody)
            if int(model.body_weldid[b]) == root and not skip[b]]


def _fused_inertia(masses: list[float], coms: list[np.ndarray],
                   tensors: list[np.ndarray]) -> tuple[float, np.ndarray, np.ndarray]:
    """Total mass, centre of mass and inertia tensor about it (parallel-axis theorem) of point
    masses with their own inertia tensors, all in one frame."""
    total = float(sum(masses))
    com = sum(m * c for m, c in zip(masses, coms)) / total if total > 0 else np.zeros(3)
    inertia = np.zeros((3, 3))
    for m, c, t in zip(masses, coms, tensors):
        d = c - com
        inertia += t + m * (float(d @ d) * np.eye(3) - np.outer(d, d))
    return total, com, inertia


def _principal(inertia: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal moments (>= 0) and principal axes (wxyz) of a symmetric inertia tensor: USD's
    MassAPI, like MuJoCo, takes a diagonal inertia plus a rotation."""
    diag, axes = np.linalg.eigh(inertia)
    if np.linalg.det(axes) < 0:  # eigh may return a reflection; a rotation is needed
        axes[:, 2] = -axes[:, 2]
    return np.clip(diag, 0.0, None), quat_from_matrix(axes)


def _group_mass(model: mujoco.MjModel, kin: mujoco.MjData, root: int,
                skip: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Mass, centre of mass, principal inertia and principal axes (wxyz), in ``root``'s frame,
    of ``root``'s weld group (what MuJoCo's ``fusestatic`` would give)."""
    members = _weld_members(model, root, skip)
    if members == [root]:
        return (float(model.body_mass[root]), model.body_ipos[root], model.body_inertia[root],
                model.body_iquat[root])
    r_root = matrix_from_quat(kin.xquat[root])
    masses, coms, tensors = [], [], []
    for b in members:
        r_body = matrix_from_quat(kin.xquat[b])
        com_w = kin.xpos[b] + r_body @ model.body_ipos[b]
        r = r_root.T @ r_body @ matrix_from_quat(model.body_iquat[b])
        masses.append(float(model.body_mass[b]))
        coms.append(r_root.T @ (com_w - kin.xpos[root]))
        tensors.append(r @ np.diag(model.body_inertia[b]) @ r.T)
    total, com, inertia = _fused_inertia(masses, coms, tensors)
    diag, quat = _principal(inertia)
    return total, com, diag, quat


# -- physics APIs on bodies ----------------------------------------------------------------------


def _apply_rigid_body(ctx: _Export, b: int, prim: Usd.Prim) -> None:
    """Weld-group root on a moving body -> RigidBodyAPI (+ MassAPI). A free joint makes it
    dynamic; any other joint is exported as kinematic (joints are not exported)."""
    model = ctx.model
    rigid = UsdPhysics.RigidBodyAPI.Apply(prim)
    jnum, jadr = int(model.body_jntnum[b]), int(model.body_jntadr[b])
    if jnum > 0 and int(model.jnt_type[jadr]) == _J.mjJNT_FREE:
        ctx.summary["rigid_bodies"] += 1
    else:
        rigid.CreateKinematicEnabledAttr(True)
        ctx.summary["kinematic_bodies"] += 1
    _apply_mass(prim, *_group_mass(model, ctx.kin, b, ctx.skip))


def _apply_mass(prim: Usd.Prim, mass: float, com: np.ndarray, diag: np.ndarray,
                paxes: np.ndarray) -> None:
    """MassAPI with MuJoCo's own mass properties, so the simulators agree without USD deriving
    them from (possibly visual-only) geometry."""
    api = UsdPhysics.MassAPI.Apply(prim)
    api.CreateMassAttr(mass)
    api.CreateCenterOfMassAttr(_vec3f(com))
    api.CreateDiagonalInertiaAttr(_vec3f(diag))
    q = _quatd(paxes)
    api.CreatePrincipalAxesAttr(Gf.Quatf(q.GetReal(), Gf.Vec3f(q.GetImaginary())))


# -- geoms: one builder per MuJoCo geom type -----------------------------------------------------


class _Shape(NamedTuple):
    """A defined geom prim and the local transform to put on it."""

    prim: UsdGeom.Gprim
    pos: np.ndarray
    quat: np.ndarray
    scale: np.ndarray | tuple[float, ...] | None = None
    is_mesh: bool = False


def _mesh_arrays(model: mujoco.MjModel, mesh_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Compiled mesh vertices and triangles (MuJoCo has already re-centred them on the geom)."""
    va, vn = int(model.mesh_vertadr[mesh_id]), int(model.mesh_vertnum[mesh_id])
    fa, fn = int(model.mesh_faceadr[mesh_id]), int(model.mesh_facenum[mesh_id])
    verts = np.asarray(model.mesh_vert[va : va + vn], dtype=np.float64)
    faces = np.asarray(model.mesh_face[fa : fa + fn], dtype=np.int64)
    return verts, faces


def _hfield_arrays(model: mujoco.MjModel, hf: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangulated top surface of a height field, on MuJoCo's grid (USD has no height field)."""
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


def _define_mesh(stage: Usd.Stage, path: str, verts: np.ndarray,
                 faces: np.ndarray) -> UsdGeom.Mesh:
    """Triangle ``UsdGeom.Mesh`` (no subdivision: MuJoCo meshes are polygonal)."""
    mesh = UsdGeom.Mesh.Define(stage, path)
    pts = Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(verts, dtype=np.float32))
    mesh.CreatePointsAttr(pts)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, dtype=np.int32)))
    indices = np.ascontiguousarray(faces, dtype=np.int32).ravel()
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(indices))
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    if len(verts):
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        mesh.CreateExtentAttr(Vt.Vec3fArray([_vec3f(lo), _vec3f(hi)]))
    return mesh


def _geom_mesh(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Mesh geom -> Mesh with the compiled vertices; the geom pose is the mesh frame."""
    verts, faces = _mesh_arrays(model, int(model.geom_dataid[g]))
    mesh = _define_mesh(stage, path, verts, faces)
    return _Shape(mesh, model.geom_pos[g], model.geom_quat[g], is_mesh=True)


def _geom_hfield(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Height field geom -> Mesh of its top surface."""
    verts, faces = _hfield_arrays(model, int(model.geom_dataid[g]))
    mesh = _define_mesh(stage, path, verts, faces)
    return _Shape(mesh, model.geom_pos[g], model.geom_quat[g], is_mesh=True)


def _unit_cube(stage: Usd.Stage, path: str) -> UsdGeom.Cube:
    """Cube of size 2 (half-extent 1), so its scale is MuJoCo's half-sizes."""
    cube = UsdGeom.Cube.Define(stage, path)
    cube.CreateSizeAttr(2.0)
    cube.CreateExtentAttr(_box_extent(-1, 1))
    return cube


def _geom_box(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Box geom -> unit Cube scaled by the half-sizes."""
    size = np.asarray(model.geom_size[g], dtype=np.float64)
    return _Shape(_unit_cube(stage, path), model.geom_pos[g], model.geom_quat[g], scale=size)


def _geom_plane(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Plane geom -> thin Cube whose top face is the plane (USD has no plane collider); an
    infinite MuJoCo plane (size 0) gets a large finite extent."""
    size = np.asarray(model.geom_size[g], dtype=np.float64)
    pos, quat = model.geom_pos[g], model.geom_quat[g]
    hx = size[0] if size[0] > 0 else _PLANE_INFINITE_HALF_EXTENT
    hy = size[1] if size[1] > 0 else _PLANE_INFINITE_HALF_EXTENT
    normal = matrix_from_quat(quat)[:, 2]
    pos = np.asarray(pos) - normal * _PLANE_HALF_THICKNESS
    return _Shape(_unit_cube(stage, path), pos, quat, scale=(hx, hy, _PLANE_HALF_THICKNESS))


def _geom_sphere(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Sphere geom -> Sphere of the same radius."""
    sphere = UsdGeom.Sphere.Define(stage, path)
    r = float(model.geom_size[g][0])
    sphere.CreateRadiusAttr(r)
    sphere.CreateExtentAttr(_box_extent(-r, r))
    return _Shape(sphere, model.geom_pos[g], model.geom_quat[g])


def _geom_ellipsoid(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Ellipsoid geom -> unit Sphere scaled by the semi-axes (USD has no ellipsoid)."""
    sphere = UsdGeom.Sphere.Define(stage, path)
    sphere.CreateRadiusAttr(1.0)
    sphere.CreateExtentAttr(_box_extent(-1.0, 1.0))
    size = np.asarray(model.geom_size[g], dtype=np.float64)
    return _Shape(sphere, model.geom_pos[g], model.geom_quat[g], scale=size)


def _define_axial(cls: type, stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int,
                  cap: bool) -> _Shape:
    """Cylinder or Capsule along Z: USD's height is 2 x MuJoCo's half-length (for a capsule the
    spine, caps excluded); ``cap`` adds the caps to the extent."""
    prim = cls.Define(stage, path)
    r, h = float(model.geom_size[g][0]), 2.0 * float(model.geom_size[g][1])
    prim.CreateRadiusAttr(r)
    prim.CreateHeightAttr(h)
    prim.CreateAxisAttr(UsdGeom.Tokens.z)
    hz = h / 2 + (r if cap else 0.0)
    prim.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(-r, -r, -hz), Gf.Vec3f(r, r, hz)]))
    return _Shape(prim, model.geom_pos[g], model.geom_quat[g])


def _geom_cylinder(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Cylinder geom -> Cylinder (axis Z)."""
    return _define_axial(UsdGeom.Cylinder, stage, path, model, g, cap=False)


def _geom_capsule(stage: Usd.Stage, path: str, model: mujoco.MjModel, g: int) -> _Shape:
    """Capsule geom -> Capsule (axis Z)."""
    return _define_axial(UsdGeom.Capsule, stage, path, model, g, cap=True)


_GeomBuilder = Callable[[Usd.Stage, str, mujoco.MjModel, int], _Shape]

# SDF geoms (and any type MuJoCo adds later) have no entry: they are skipped and counted.
_GEOM_BUILDERS: dict[int, _GeomBuilder] = {
    int(_G.mjGEOM_MESH): _geom_mesh,
    int(_G.mjGEOM_HFIELD): _geom_hfield,
    int(_G.mjGEOM_BOX): _geom_box,
    int(_G.mjGEOM_PLANE): _geom_plane,
    int(_G.mjGEOM_SPHERE): _geom_sphere,
    int(_G.mjGEOM_ELLIPSOID): _geom_ellipsoid,
    int(_G.mjGEOM_CYLINDER): _geom_cylinder,
    int(_G.mjGEOM_CAPSULE): _geom_capsule,
}


# -- geom appearance and collision ---------------------------------------------------------------


def _rgba(model: mujoco.MjModel, g: int) -> np.ndarray:
    """The colour MuJoCo renders: the material's rgba overrides the geom's."""
    mat = int(model.geom_matid[g])
    return np.asarray(model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g], dtype=np.float64)


def _set_display(gprim: UsdGeom.Gprim, rgba: np.ndarray) -> None:
    """displayColor/displayOpacity; alpha 0 -> invisible (MuJoCo's way to hide a collider)."""
    gprim.CreateDisplayColorAttr(Vt.Vec3fArray([_vec3f(rgba[:3])]))
    gprim.CreateDisplayOpacityAttr(Vt.FloatArray([float(rgba[3])]))
    if rgba[3] <= 0.0:
        gprim.CreateVisibilityAttr(UsdGeom.Tokens.invisible)


def _physics_material(ctx: _Export, friction: float) -> UsdShade.Material:
    """One shared physics material per distinct sliding friction (MuJoCo has no restitution)."""
    key = round(float(friction), 9)
    if key not in ctx.materials:
        if not ctx.materials:
            UsdGeom.Scope.Define(ctx.stage, "/World/PhysicsMaterials")
        mat_path = f"/World/PhysicsMaterials/friction_{len(ctx.materials)}"
        mat = UsdShade.Material.Define(ctx.stage, mat_path)
        api = UsdPhysics.MaterialAPI.Apply(mat.GetPrim())
        api.CreateStaticFrictionAttr(key)
        api.CreateDynamicFrictionAttr(key)
        api.CreateRestitutionAttr(0.0)
        ctx.materials[key] = mat
    return ctx.materials[key]


def _collides(model: mujoco.MjModel, g: int) -> bool:
    """MuJoCo collides a geom with something iff contype | conaffinity != 0."""
    return bool(int(model.geom_contype[g]) | int(model.geom_conaffinity[g]))


def _apply_collision(ctx: _Export, prim: Usd.Prim, g: int, is_mesh: bool, static: bool) -> None:
    """CollisionAPI + friction material. Meshes collide as their convex hull (what MuJoCo does);
    height fields as their triangles (approximation ``none``)."""
    UsdPhysics.CollisionAPI.Apply(prim)
    if is_mesh:
        approx = "convexHull" if int(ctx.model.geom_type[g]) == _G.mjGEOM_MESH else "none"
        UsdPhysics.MeshCollisionAPI.Apply(prim).CreateApproximationAttr(approx)
    binding = UsdShade.MaterialBindingAPI.Apply(prim)
    binding.Bind(_physics_material(ctx, ctx.model.geom_friction[g][0]),
                 UsdShade.Tokens.weakerThanDescendants, "physics")
    ctx.summary["colliders"] += 1
    ctx.summary["static_colliders"] += int(static)


def _export_geom(ctx: _Export, g: int, bpath: str, names: _Names, static: bool) -> None:
    """One geom prim under its body: shape, local pose, display, collision."""
    model = ctx.model
    build = _GEOM_BUILDERS.get(int(model.geom_type[g]))
    if build is None:
        ctx.summary["skipped_geoms"] += 1
        return
    raw = mujoco.mj_id2name(model, _OBJ.mjOBJ_GEOM, g) or ""
    shape = build(ctx.stage, f"{bpath}/{names.take(raw, f'geom_{g}')}", model, g)
    _set_pose(shape.prim, shape.pos, shape.quat, shape.scale)
    ctx.summary["geoms"] += 1
    ctx.summary["meshes"] += int(shape.is_mesh)
    _set_display(shape.prim, _rgba(model, g))
    if _collides(model, g):
        _apply_collision(ctx, shape.prim.GetPrim(), g, shape.is_mesh, static)


def _export_body(ctx: _Export, b: int) -> None:
    """Body Xform, its rigid-body physics when it moves, then its geoms."""
    model = ctx.model
    bxf = _place_body(ctx, b)
    static = _is_static(model, b)
    if not static and int(model.body_weldid[b]) == b:
        _apply_rigid_body(ctx, b, bxf.GetPrim())
    names = _Names()
    gadr, gnum = int(model.body_geomadr[b]), int(model.body_geomnum[b])
    for g in range(gadr, gadr + gnum) if gadr >= 0 else ():
        _export_geom(ctx, g, ctx.body_path[b], names, static)


# -- output --------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Create the parent directory, then write atomically: a crash never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GrailError(f"cannot create the output directory: {exc}", file=path.parent) from exc
    write_text_atomic(path, text)


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
    layer, stage = _new_stage()
    _define_physics_scene(stage, model)
    ctx = _Export(model, kin, skip, stage, _new_summary(path, model, skip))
    for b in range(model.nbody):
        if not skip[b]:
            _export_body(ctx, b)
    _write(path, layer.ExportToString())
    return ctx.summary
