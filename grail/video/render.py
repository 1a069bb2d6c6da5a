"""Render the interaction video of a composed scene: the scene's MJCF with the character spliced in.

The render model is ``scene/scene.xml`` (same lights, materials and camera as the compose render)
plus the character's mocap bone bodies and skins from :func:`grail.character.mjcf.character_mjcf`.
A frame is fully described by the bone world transforms and the poses of the objects that move
(bodies with a ``{name}_free`` free joint); objects a frame does not mention sit at their
``scene.xml`` pose.

:func:`joint_mask_agreement` checks that rendered character pixels and the ground-truth joints
agree (the video shows the motion the ground truth claims).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from grail.render.offscreen import OffscreenRenderer, Segmentation  # selects the GL backend first

import mujoco  # noqa: E402

from grail.character.mjcf import character_mjcf, character_skin_ids  # noqa: E402
from grail.character.model import CharacterModel  # noqa: E402
from grail.errors import GrailError  # noqa: E402
from grail.rotations import quats_from_matrices  # noqa: E402
from grail.scene.camera import PinholeCamera  # noqa: E402
from grail.scene.mjcf import CAMERA_NAME  # noqa: E402

CHARACTER_PREFIX = "char"
ASPECT_TOLERANCE = 0.01  # relative; a render size must keep camera.json's aspect ratio
OCCLUSION_MARGIN_M = 0.25  # something non-character this much in front of a joint occludes it
MASK_TOLERANCE_PX = 1  # a joint agrees when a character pixel lies within this many pixels

ObjectPoses = dict[str, tuple[np.ndarray, np.ndarray]]


# ---- the model ---------------------------------------------------------------------------------


def _fragment(xml: str, file: Path) -> list[ET.Element]:
    try:
        return list(ET.fromstring(f"<fragment>{xml}</fragment>"))
    except ET.ParseError as err:
        raise GrailError(f"character MJCF does not parse ({err})", file=file, field="character") from None


def _child(root: ET.Element, tag: str) -> ET.Element:
    found = root.find(tag)
    return found if found is not None else ET.SubElement(root, tag)


def render_model_xml(scene_dir: Path, character: CharacterModel, colors: dict | None) -> str:
    """The text of scene.xml with the character added and asset directories made absolute."""
    scene_dir = Path(scene_dir).resolve()
    path = scene_dir / "scene.xml"
    try:
        root = ET.fromstring(path.read_text())
    except OSError as err:
        raise GrailError(f"cannot read the scene MJCF ({err.strerror or err})", file=path) from None
    except ET.ParseError as err:
        raise GrailError(f"not valid XML ({err})", file=path) from None
    if root.tag != "mujoco":
        raise GrailError(f"root element is <{root.tag}>, expected <mujoco>", file=path)

    compilers = root.findall("compiler") or [ET.Element("compiler")]
    if compilers[0] not in list(root):
        root.insert(0, compilers[0])
    for compiler in compilers:
        for attr in ("meshdir", "texturedir", "assetdir"):
            value = compiler.get(attr)
            if value is not None and not Path(value).is_absolute():
                compiler.set(attr, str(scene_dir / value))
    if not any(c.get("meshdir") or c.get("assetdir") for c in compilers):
        compilers[0].set("meshdir", str(scene_dir))  # mesh files are relative to scene.xml

    char = character_mjcf(character, prefix=CHARACTER_PREFIX, colors=colors)
    _child(root, "asset").extend(_fragment(char.asset_xml, path))
    _child(root, "worldbody").extend(_fragment(char.body_xml, path))
    _child(root, "deformable").extend(_fragment(char.deformable_xml, path))
    return ET.tostring(root, encoding="unicode")


def build_render_model(scene_dir: Path, character: CharacterModel, colors: dict | None) -> mujoco.MjModel:
    """scene.xml with the character spliced in (bone mocap bodies + one skin per clothing region)."""
    xml = render_model_xml(scene_dir, character, colors)
    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as err:
        raise GrailError(f"the scene with the character does not compile ({err})", file=Path(scene_dir) / "scene.xml") from None


def load_scene_camera(scene_dir: Path) -> PinholeCamera:
    path = Path(scene_dir) / "camera.json"
    try:
        return PinholeCamera.from_json(json.loads(path.read_text()))
    except OSError as err:
        raise GrailError(f"cannot read the camera ({err.strerror or err})", file=path) from None
    except (ValueError, KeyError, TypeError) as err:
        raise GrailError(f"malformed camera ({err})", file=path) from None


def scaled_camera(camera: PinholeCamera, width: int, height: int, file: Path | str | None = None) -> PinholeCamera:
    """The same camera at another resolution with the same aspect ratio (same vertical field of
    view, so K scales by height/camera.height with the principal point at the new image centre)."""
    width, height = int(width), int(height)
    for field, value in (("width", width), ("height", height)):
        if value < 2:
            raise GrailError(f"must be at least 2 pixels (got {value})", file=file, field=field)
    if (width, height) == (camera.width, camera.height):
        return camera
    aspect, wanted = camera.width / camera.height, width / height
    if abs(wanted / aspect - 1.0) > ASPECT_TOLERANCE:
        raise GrailError(
            f"{width}x{height} changes the camera's aspect ratio ({camera.width}x{camera.height}: "
            f"{aspect:.4f} vs {wanted:.4f})", file=file, field="width")
    return PinholeCamera(width=width, height=height, fov_deg=camera.fov_deg, T_world_cam=camera.T_world_cam.copy())


# ---- the renderer ------------------------------------------------------------------------------


class VideoRenderer:
    """Renders frames of a composed scene with the character from ``scene_cam``.

    ``width``/``height`` may differ from camera.json's when the aspect ratio is kept (within 1 %);
    ``.camera`` is then the scaled camera that matches the rendered pixels.
    """

    def __init__(self, scene_dir: Path, character: CharacterModel, colors: dict | None, width: int, height: int):
        self.scene_dir = Path(scene_dir)
        self.character = character
        self.camera = scaled_camera(load_scene_camera(self.scene_dir), width, height, file=self.scene_dir / "camera.json")
        self.width, self.height = self.camera.width, self.camera.height
        self.model = build_render_model(self.scene_dir, character, colors)
        self.data = mujoco.MjData(self.model)
        m = self.model
        # the camera of camera.json (the same numbers as scene.xml, to full precision)
        cam_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        if cam_id < 0:
            raise GrailError(f"no camera named {CAMERA_NAME!r}", file=self.scene_dir / "scene.xml")
        self._cam_id = cam_id
        m.cam_pos[cam_id] = self.camera.position
        m.cam_quat[cam_id] = self.camera.mujoco_quat()
        m.cam_fovy[cam_id] = self.camera.fov_deg
        # bone mocap slots, looked up once
        mocap = []
        for b in character.bone_names:
            bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"{CHARACTER_PREFIX}_{b}")
            if bid < 0 or m.body_mocapid[bid] < 0:
                raise GrailError(f"character bone {b!r} has no mocap body", field="character")
            mocap.append(int(m.body_mocapid[bid]))
        self._mocap = np.asarray(mocap, dtype=np.int64)
        # movable objects: bodies with a free joint -> qpos address
        self.object_qpos: dict[str, int] = {}
        for j in range(m.njnt):
            if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
                body = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, int(m.jnt_bodyid[j]))
                self.object_qpos[body] = int(m.jnt_qposadr[j])
        self.skin_ids = character_skin_ids(m, CHARACTER_PREFIX)
        self._renderer: OffscreenRenderer | None = OffscreenRenderer(m, self.width, self.height)
        self.pose(None, None)

    # -- context management
    def __enter__(self) -> "VideoRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    @property
    def renderer(self) -> OffscreenRenderer:
        if self._renderer is None:
            raise RuntimeError("VideoRenderer is closed")
        return self._renderer

    # -- posing
    def rest_pose(self, T_world_root: np.ndarray) -> np.ndarray:
        """(J,4,4) bone world transforms of the rest pose placed by a root transform."""
        return np.einsum("ij,bjk->bik", np.asarray(T_world_root, float), self.character.bone_rest)

    def pose(self, bone_world: np.ndarray | None, object_poses: ObjectPoses | None) -> None:
        """Set the character's bones (J,4,4) and the moving objects' (pos, quat wxyz); objects not
        named sit at their scene.xml pose. Then compute what rendering needs."""
        m, d = self.model, self.data
        d.qpos[:] = m.qpos0
        if bone_world is not None:
            T = np.asarray(bone_world, float)
            J = len(self._mocap)
            if T.shape != (J, 4, 4):
                raise GrailError(f"shape {T.shape}, expected {(J, 4, 4)}", field="bone_world")
            if not np.all(np.isfinite(T)):
                raise GrailError("contains NaN or infinite values", field="bone_world")
            d.mocap_pos[self._mocap] = T[:, :3, 3]
            d.mocap_quat[self._mocap] = quats_from_matrices(T[:, :3, :3])
        for name, value in (object_poses or {}).items():
            adr = self.object_qpos.get(name)
            if adr is None:
                bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)
                why = "is static (no free joint) and cannot move" if bid >= 0 else "is not a body of the scene"
                raise GrailError(f"object {name!r} {why}", field="object_poses")
            pos, quat = (np.asarray(v, float).reshape(-1) for v in value)
            if pos.shape != (3,) or quat.shape != (4,):
                raise GrailError(f"{name}: expected pos (3,) and quat (4,), got {pos.shape} and {quat.shape}", field="object_poses")
            n = float(np.linalg.norm(quat))
            if not (np.all(np.isfinite(pos)) and np.isfinite(n) and n > 1e-9):
                raise GrailError(f"{name}: pose is not finite or the quaternion is zero", field="object_poses")
            d.qpos[adr:adr + 3] = pos
            d.qpos[adr + 3:adr + 7] = quat / n
        # body poses (mocap + free joints) and camera/light poses are all rendering needs; skins
        # are deformed from the body poses inside mjv_updateScene.
        mujoco.mj_kinematics(m, d)
        mujoco.mj_camlight(m, d)

    # -- rendering
    def frame(self, bone_world: np.ndarray, object_poses: ObjectPoses | None = None) -> np.ndarray:
        """(H,W,3) uint8 RGB of the posed scene from scene_cam."""
        self.pose(bone_world, object_poses)
        return self.renderer.rgb(self.data, self._cam_id)

    def segmentation_and_depth(self, bone_world: np.ndarray, object_poses: ObjectPoses | None = None
                               ) -> tuple[np.ndarray, Segmentation, np.ndarray]:
        """(character mask (H,W) bool, per-pixel MuJoCo ids/types, metric depth (H,W) float32)."""
        self.pose(bone_world, object_poses)
        seg = self.renderer.segmentation(self.data, self._cam_id)
        depth = self.renderer.depth(self.data, self._cam_id)
        return self.character_pixels(seg), seg, depth

    def character_mask(self, bone_world: np.ndarray, object_poses: ObjectPoses | None = None) -> np.ndarray:
        """(H,W) bool: pixels where the character's skins are the nearest surface."""
        self.pose(bone_world, object_poses)
        return self.character_pixels(self.renderer.segmentation(self.data, self._cam_id))

    def character_pixels(self, seg: Segmentation) -> np.ndarray:
        return seg.skin_mask() & np.isin(seg.ids, self.skin_ids)


# ---- agreement of rendered masks with the joints -----------------------------------------------


def joint_mask_agreement(
    joints_w: np.ndarray,
    camera: PinholeCamera,
    masks: np.ndarray,
    depths: np.ndarray,
    frame_indices,
    names: list[str] | None = None,
    tolerance_px: int = MASK_TOLERANCE_PX,
    occlusion_margin_m: float = OCCLUSION_MARGIN_M,
) -> dict:
    """How many visible joints land on character pixels.

    ``joints_w`` (T,N,3) world joints; ``masks``/``depths`` (F,H,W) rendered character masks and
    metric depth (0 = nothing hit) of the frames ``frame_indices`` (F indices into T). A joint of a
    sampled frame is *visible* when it projects inside the image, lies in front of the camera and
    no non-character surface at its pixel is closer than (joint depth - ``occlusion_margin_m``).
    It *agrees* ("inside") when a character pixel lies within ``tolerance_px`` of its pixel
    (a (2t+1)^2 neighbourhood). ``fraction`` = inside / visible (0.0 when nothing is visible).
    """
    joints_w = np.asarray(joints_w, float)
    masks = np.asarray(masks, bool)
    depths = np.asarray(depths, float)
    frames = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if joints_w.ndim != 3 or joints_w.shape[2] != 3:
        raise GrailError(f"shape {joints_w.shape}, expected (T,N,3)", field="joints_w")
    F = len(frames)
    H, W = camera.height, camera.width
    if masks.shape != (F, H, W) or depths.shape != (F, H, W):
        raise GrailError(f"masks {masks.shape} / depths {depths.shape}, expected {(F, H, W)}", field="masks")
    if F and (frames.min() < 0 or frames.max() >= len(joints_w)):
        raise GrailError(f"frame index out of range 0..{len(joints_w) - 1}", field="frame_indices")
    N = joints_w.shape[1]
    if names is not None and len(names) != N:
        raise GrailError(f"{len(names)} names for {N} joints", field="names")
    t = int(tolerance_px)
    if t < 0:
        raise GrailError("must be >= 0", field="tolerance_px")

    pts = joints_w[frames].reshape(-1, 3)
    uv, z = camera.project(pts)
    px = np.rint(np.nan_to_num(uv, nan=-1e9, posinf=-1e9, neginf=-1e9)).astype(np.int64)
    fi = np.repeat(np.arange(F), N)
    inside_image = (z > 1e-6) & (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    u = np.clip(px[:, 0], 0, W - 1)
    v = np.clip(px[:, 1], 0, H - 1)
    surface = depths[fi, v, u]
    on_char = masks[fi, v, u]
    occluded = inside_image & ~on_char & (surface > 0) & (surface < z - occlusion_margin_m)
    visible = inside_image & ~occluded
    # dilate the masks by the tolerance: character pixel anywhere in the neighbourhood
    near = np.zeros(len(pts), bool)
    for dv in range(-t, t + 1):
        for du in range(-t, t + 1):
            uu, vv = px[:, 0] + du, px[:, 1] + dv
            ok = (uu >= 0) & (uu < W) & (vv >= 0) & (vv < H)
            near |= ok & masks[fi, np.clip(vv, 0, H - 1), np.clip(uu, 0, W - 1)]
    agree = visible & near
    n_vis, n_in = int(visible.sum()), int(agree.sum())
    out = {
        "frames": F,
        "joints": N,
        "visible": n_vis,
        "inside": n_in,
        "fraction": n_in / n_vis if n_vis else 0.0,
        "occluded": int(occluded.sum()),
        "out_of_image": int((~inside_image).sum()),
        "tolerance_px": t,
        "occlusion_margin_m": float(occlusion_margin_m),
    }
    if names is not None:
        miss = (visible & ~near).reshape(F, N).sum(0)
        out["misses"] = {str(n): int(c) for n, c in zip(names, miss) if c}
    return out
