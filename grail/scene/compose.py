"""The compose stage: template + seed -> scene/ (spec, MJCF, USD, camera, meshes, renders).

Everything the later stages need to reconstruct motion is fixed here, before any video
exists: object geometry and resting poses, the camera, metric depth of the environment and the
robot-proportioned character.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grail.render.offscreen import OffscreenRenderer, only_groups  # selects the GL backend first

import mujoco  # noqa: E402

from grail.errors import GrailError
from grail.scene import layout as layout_mod
from grail.scene.camera import CameraConstraints, PinholeCamera, sample_camera
from grail.scene.mjcf import (
    CAMERA_NAME,
    GROUP_COLLISION,
    GROUP_FURNITURE,
    GROUP_OBJECT,
    GROUP_SUPPORT_STATIC,
    Extras,
    LightSetup,
    MjcfItem,
    scene_mjcf,
)
from grail.scene.settle import SettleResult, settle
from grail.scene.spec import (
    ResolvedCamera,
    ResolvedCharacter,
    ResolvedItem,
    ResolvedLight,
    ResolvedPose,
    ResolvedScene,
    SceneTemplate,
    dump_resolved,
    load_template,
)

MAX_FLOAT_M = 0.005  # an unheld object may rest at most this far above its support
MAX_PENETRATION_M = 0.003
OCCLUSION_RENDER_WIDTH = 256


@dataclass
class ComposeOptions:
    width: int | None = None  # override the template's render size
    height: int | None = None


def sequence_id(template: Path, seed: int) -> str:
    return f"{Path(template).stem}_s{seed:05d}"


def spec_hash(template_path: Path, seed: int, options: ComposeOptions) -> str:
    digest = hashlib.sha256(Path(template_path).read_bytes())
    digest.update(json.dumps({"seed": seed, "width": options.width, "height": options.height}).encode())
    return digest.hexdigest()


class ScenePlan:
    """A validated template with its assets and layout sampled; building it writes files."""

    def __init__(self, template_path: Path, seed: int, options: ComposeOptions):
        self.template_path = Path(template_path)
        self.template: SceneTemplate = load_template(self.template_path)
        self.seed = int(seed)
        self.width = options.width or self.template.render.width
        self.height = options.height or self.template.render.height
        self.id = sequence_id(self.template_path, self.seed)
        # Sampling and asset building validate everything before anything is written.
        self.assets = layout_mod.make_assets(self.template, self.template_path, self.seed)
        self.layout = layout_mod.place(self.template, self.template_path, self.seed, self.assets)

    # ---- build -----------------------------------------------------------------------------

    def build(self, scene_dir: Path) -> dict:
        """Write the whole scene/ directory into `scene_dir` (a temporary stage directory)."""
        from grail.assets.io import write_asset

        meshes = scene_dir / "meshes"
        meshes.mkdir(parents=True, exist_ok=True)
        items = []
        for p in self.layout.placed:
            files = write_asset(p.asset, meshes)
            items.append(_mjcf_item(p, files))
        light = self._light()

        settled = self._settle(items, meshes, light)
        for item in items:
            if item.name in settled.poses:
                item.pos, item.quat = settled.poses[item.name]

        character, shape, colors = self._character()
        from grail.character.mjcf import character_mjcf

        char_xml = character_mjcf(character, prefix="char", colors=colors)
        extras = Extras(asset_xml=char_xml.asset_xml, body_xml=char_xml.body_xml, deformable_xml=char_xml.deformable_xml)
        render_model = mujoco.MjModel.from_xml_string(
            scene_mjcf(self.id, items, str(meshes.resolve()), light, None, extras)
        )
        render_data = mujoco.MjData(render_model)
        char_world = self._pose_character(render_model, render_data, character)
        camera = self._camera(render_model, render_data, items, char_world)
        _set_model_camera(render_model, camera)
        mujoco.mj_forward(render_model, render_data)
        renders, visibility = _render_all(render_model, render_data, camera, items)

        # -- files -------------------------------------------------------------------------
        (scene_dir / "scene.xml").write_text(scene_mjcf(self.id, items, "meshes", light, camera))
        physics = mujoco.MjModel.from_xml_path(str(scene_dir / "scene.xml"))
        physics_data = mujoco.MjData(physics)
        mujoco.mj_forward(physics, physics_data)
        from grail.scene.usd_export import export_usd

        export_usd(physics, physics_data, scene_dir / "scene.usda")
        (scene_dir / "camera.json").write_text(json.dumps(camera.to_json(), indent=2) + "\n")
        resolved = self._resolved(items, settled, shape, colors, camera, light)
        (scene_dir / "spec.yaml").write_text(dump_resolved(resolved))
        _save_character(scene_dir / "character.npz", character, self.layout.character_T)
        from grail.scene.render_io import write_renders

        write_renders(scene_dir / "render", renders)
        return {
            "settle_s": round(settled.simulated_s, 3),
            "max_penetration_m": round(settled.max_penetration_m, 6),
            "fit_residual_max_m": round(max(shape.fit_residuals_m.values(), default=0.0), 4),
            "object_visibility": visibility,
            "character_pixels": int(renders["mask_character"].sum()),
        }

    # ---- steps -----------------------------------------------------------------------------

    def _light(self) -> LightSetup:
        rng = layout_mod.rng_for(self.seed, "lighting")
        spec = self.template.lighting
        az = math.radians(float(layout_mod.sample_value(spec.azimuth_deg, rng)))
        el = math.radians(float(layout_mod.sample_value(spec.elevation_deg, rng)))
        intensity = float(layout_mod.sample_value(spec.intensity, rng))
        direction = -np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        return LightSetup(direction=direction, intensity=intensity)

    def _settle(self, items: list[MjcfItem], meshes: Path, light: LightSetup) -> SettleResult:
        model = mujoco.MjModel.from_xml_string(scene_mjcf(self.id, items, str(meshes.resolve()), light))
        data = mujoco.MjData(model)
        result = settle(model, data)
        if result.max_penetration_m > MAX_PENETRATION_M:
            raise GrailError(f"objects interpenetrate by {result.max_penetration_m * 1000:.1f} mm after settling", file=self.template_path, field="settle")
        for p in self.layout.placed:
            if p.role == "terrain":
                continue
            pos, _ = result.poses[p.spec_name]
            expected = 0.0
            if p.support is not None:
                base_pos, _ = result.poses[p.support]
                expected = base_pos[2] + self.layout.by_name(p.support).asset.support_height
            lowest = _lowest_point(p, pos, result.poses[p.spec_name][1])
            if lowest - expected > MAX_FLOAT_M or lowest - expected < -0.05:
                raise GrailError(
                    f"'{p.spec_name}' did not come to rest on its support (base at {lowest:.3f} m, support at {expected:.3f} m)",
                    file=self.template_path,
                    field="settle",
                )
        return result

    def _character(self):
        from dataclasses import replace

        from grail.character import CharacterShape, build_character, fit_g1_character

        spec = self.template.character
        if spec.model == "anny":
            shape = fit_g1_character()
            character = build_character(shape)
        else:
            if not spec.model_path:
                raise GrailError("the smplx character needs model_path", file=self.template_path, field="character.model_path")
            path = Path(spec.model_path)
            path = path if path.is_absolute() else (self.template_path.parent / path).resolve()
            shape = CharacterShape(model="smplx", params={}, height_m=0.0, fit_residuals_m={})
            character = build_character(shape, model_path=path)
            shape = replace(shape, height_m=float(character.height_m))
        rng = layout_mod.rng_for(self.seed, "character")
        colors = {}
        for region in ("skin", "shirt", "trousers", "shoes", "hair"):
            options = getattr(spec.clothing, region)
            rgb = options[int(rng.integers(len(options)))]
            colors[region] = (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)
        return character, shape, colors

    def _pose_character(self, model, data, character) -> np.ndarray:
        """Pose the character at rest at its layout placement; returns its world vertices."""
        from grail.character.mjcf import pose_character

        T = self.layout.character_T
        bones = np.einsum("ij,bjk->bik", T, character.bone_rest)
        pose_character(model, data, character, bones)
        mujoco.mj_forward(model, data)
        return character.vertices @ T[:3, :3].T + T[:3, 3]

    def _camera(self, model, data, items: list[MjcfItem], char_world: np.ndarray) -> PinholeCamera:
        spec = self.template.camera
        rng = layout_mod.rng_for(self.seed, "camera")
        mujoco.mj_forward(model, data)
        must_see = {"character": char_world[:: max(1, len(char_world) // 1500)]}
        object_geoms = {}
        for p in self.layout.placed:
            if p.role == "object" or p.spec_name == self.template.focus:
                must_see[p.spec_name] = _settled_vertices(model, data, p)
            if p.role == "object":
                object_geoms[p.spec_name] = model.geom(f"{p.spec_name}_visual").id
        focus_points = must_see.get(self.template.focus, np.concatenate(list(must_see.values())))
        look_at = 0.5 * (_box_centre(char_world) + _box_centre(focus_points))
        scale = self.width / 1280.0

        constraints = CameraConstraints(
            fov_deg=_pair(spec.fov_deg),
            distance=_pair(spec.distance),
            height=_pair(spec.height),
            azimuth_deg=_pair(spec.azimuth_deg),
            look_at_jitter=spec.look_at_jitter,
            margin_px=spec.margin_px * scale,
            max_tries=spec.max_tries,
        )
        small_w = min(OCCLUSION_RENDER_WIDTH, self.width)
        small_h = max(16, int(round(small_w * self.height / self.width)))
        with OffscreenRenderer(model, small_w, small_h) as renderer:
            visible_all = only_groups([GROUP_SUPPORT_STATIC, GROUP_FURNITURE, GROUP_OBJECT], skins=True)
            objects_only = only_groups([GROUP_OBJECT], skins=False)

            def unoccluded(camera: PinholeCamera) -> str | None:
                if not object_geoms:
                    return None
                _set_model_camera(model, camera)
                mujoco.mj_forward(model, data)
                full = renderer.segmentation(data, CAMERA_NAME, visible_all)
                alone = renderer.segmentation(data, CAMERA_NAME, objects_only)
                for name, gid in object_geoms.items():
                    seen_alone = int(alone.geom_mask([gid]).sum())
                    if seen_alone == 0:
                        return f"{name} too small to see"
                    if full.geom_mask([gid]).sum() / seen_alone < spec.min_object_visibility:
                        return f"{name} occluded"
                return None

            try:
                return sample_camera(constraints, rng, self.width, self.height, look_at, must_see, unoccluded)
            except GrailError as err:
                raise GrailError(err.reason, file=self.template_path, field="camera") from None

    def _resolved(self, items, settled, shape, colors, camera: PinholeCamera, light: LightSetup) -> ResolvedScene:
        by_name = {i.name: i for i in items}
        resolved_items = []
        for p in self.layout.placed:
            item = by_name[p.spec_name]
            resolved_items.append(
                ResolvedItem(
                    name=p.spec_name,
                    role=p.role,
                    kind=p.asset.kind,
                    category=p.asset.category,
                    params=_plain_params(p.asset.params),
                    source=p.source,
                    mass=float(p.asset.mass),
                    static=bool(p.asset.static),
                    support=p.support,
                    support_height=p.asset.support_height,
                    mesh=f"meshes/{item.visual_file}",
                    collision=[f"meshes/{f}" for f in item.collision_files],
                    pose=ResolvedPose(pos=tuple(map(float, item.pos)), quat=tuple(map(float, item.quat))),
                    rgba=tuple(map(float, p.asset.rgba)),
                )
            )
        T = self.layout.character_T
        look_at = camera.position + camera.R_world_cam[:, 2]
        return ResolvedScene(
            id=self.id,
            template=self.template_path.name,
            task=self.template.task,
            seed=self.seed,
            prompt=self.template.render_prompt({p.spec_name: p.asset.kind for p in self.layout.placed}),
            duration_s=self.template.duration_s,
            fps=self.template.fps,
            character=ResolvedCharacter(
                model=shape.model,
                params={k: float(v) for k, v in shape.params.items()},
                height_m=float(shape.height_m),
                fit_residuals_m={k: float(v) for k, v in shape.fit_residuals_m.items()},
                pose=ResolvedPose(pos=tuple(map(float, T[:3, 3])), quat=tuple(map(float, layout_mod.yaw_quat(self.layout.character_yaw)))),
                colors=colors,
            ),
            items=resolved_items,
            focus=self.template.focus,
            camera=ResolvedCamera(
                fov_deg=camera.fov_deg,
                width=camera.width,
                height=camera.height,
                position=tuple(map(float, camera.position)),
                look_at=tuple(map(float, look_at)),
            ),
            light=ResolvedLight(direction=tuple(map(float, light.direction)), intensity=light.intensity),
        )


# ---- helpers ------------------------------------------------------------------------------


def _pair(value) -> tuple[float, float]:
    return (float(value[0]), float(value[1])) if isinstance(value, tuple) else (float(value), float(value))


def _box_centre(points: np.ndarray) -> np.ndarray:
    return 0.5 * (points.min(axis=0) + points.max(axis=0))


def _plain_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, (np.floating, float)):
            out[k] = round(float(v), 6)
        elif isinstance(v, (np.integer,)):
            out[k] = int(v)
        elif isinstance(v, (list, tuple, np.ndarray)):
            out[k] = [round(float(x), 6) if isinstance(x, (float, np.floating)) else x for x in v]
        else:
            out[k] = v
    return out


def _mjcf_item(p: layout_mod.Placed, files: dict) -> MjcfItem:
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(p.T_world[:3, :3]).as_quat()
    return MjcfItem(
        name=p.spec_name,
        role=p.role,
        visual_file=files["visual"],
        collision_files=list(files["collision"]),
        mass=float(p.asset.mass),
        com=np.asarray(p.asset.com, float),
        inertia=np.asarray(p.asset.inertia, float),
        rgba=tuple(p.asset.rgba),
        pos=p.T_world[:3, 3].copy(),
        quat=np.array([xyzw[3], xyzw[0], xyzw[1], xyzw[2]]),
        static=bool(p.asset.static),
    )


def _rotation(quat_wxyz: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(quat_wxyz, float))
    return m.reshape(3, 3)


def _lowest_point(p: layout_mod.Placed, pos: np.ndarray, quat: np.ndarray) -> float:
    v = np.asarray(p.asset.visual.vertices, float)
    return float(np.min(v @ _rotation(quat)[:, 2] + pos[2]))


def _settled_vertices(model, data, p: layout_mod.Placed) -> np.ndarray:
    body = model.body(p.spec_name)
    v = np.asarray(p.asset.visual.vertices, float)
    v = v[:: max(1, len(v) // 1500)]
    return v @ data.xmat[body.id].reshape(3, 3).T + data.xpos[body.id]


def _set_model_camera(model: mujoco.MjModel, camera: PinholeCamera) -> None:
    cid = model.camera(CAMERA_NAME).id
    model.cam_pos[cid] = camera.position
    model.cam_quat[cid] = camera.mujoco_quat()
    model.cam_fovy[cid] = camera.fov_deg


def _render_all(model, data, camera: PinholeCamera, items: list[MjcfItem]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Final renders, plus each object's visible fraction (full scene against the object alone)."""
    object_ids = {i.name: model.geom(f"{i.name}_visual").id for i in items if i.role == "object"}
    support_ids = [model.geom("floor").id] + [model.geom(f"{i.name}_visual").id for i in items if i.role != "object"]
    with OffscreenRenderer(model, camera.width, camera.height) as renderer:
        rgb = renderer.rgb(data, CAMERA_NAME)
        depth = renderer.depth(data, CAMERA_NAME)
        seg = renderer.segmentation(data, CAMERA_NAME)
        alone = renderer.segmentation(data, CAMERA_NAME, only_groups([GROUP_OBJECT], skins=False))
    visibility = {}
    for name, gid in object_ids.items():
        seen_alone = int(alone.geom_mask([gid]).sum())
        visibility[name] = round(float(seg.geom_mask([gid]).sum()) / seen_alone, 4) if seen_alone else 0.0
    renders = {
        "rgb": rgb,
        "depth": depth,
        "mask_object": seg.geom_mask(list(object_ids.values())),
        "mask_character": seg.skin_mask(),
        "mask_support": seg.geom_mask(support_ids),
    }
    return renders, visibility


def _save_character(path: Path, character, T_world: np.ndarray) -> None:
    np.savez(path, **character.arrays(), T_world_root=T_world.astype(np.float64))


# ---- the stage ----------------------------------------------------------------------------


def stage_inputs(template_path: Path, seed: int, options: ComposeOptions) -> dict[str, str]:
    """What the scene stage depends on: the template bytes, the seed, the size, user meshes."""
    from grail import __version__
    from grail.sequence import hash_file

    inputs = {
        "template": hash_file(template_path),
        "seed": str(seed),
        "size": f"{options.width}x{options.height}",
        "grail": __version__,
    }
    try:
        template = load_template(template_path)
    except GrailError:
        return inputs
    for item in template.furniture + template.objects:
        for variant in item.variants:
            if variant.kind == "mesh":
                path = Path(variant.path) if Path(variant.path).is_absolute() else template_path.parent / variant.path
                inputs[f"mesh:{variant.path}"] = hash_file(path) if path.is_file() else "missing"
    return inputs


def compose_sequence(template_path: Path, seed: int, out_root: Path, options: ComposeOptions | None = None, force: bool = False):
    """Compose one sequence into `<out_root>/<id>/scene/`; skipped when done and unchanged.

    Bad input raises GrailError before anything is written. A sequence directory created by
    this call is removed again when its scene fails, so bad input leaves nothing behind."""
    import shutil

    from grail.sequence import Sequence

    options = options or ComposeOptions()
    template_path = Path(template_path)
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise GrailError("output path is a file, not a directory", file=out_root, field="--out")
    load_template(template_path)  # fail fast on a malformed template
    seq_id = sequence_id(template_path, seed)
    inputs = stage_inputs(template_path, seed, options)
    existing = out_root / seq_id
    if not force and (existing / "sequence.json").is_file():
        seq = Sequence.open(existing)
        if seq.is_done("scene", inputs):
            return seq, seq.run_stage("scene", lambda _: None, inputs)
    plan = ScenePlan(template_path, seed, options)
    fresh = not existing.exists()
    seq = Sequence.create(out_root, seq_id, spec_hash(template_path, seed, options))
    try:
        result = seq.run_stage("scene", plan.build, inputs, force=force)
    except GrailError:
        if fresh:
            shutil.rmtree(existing, ignore_errors=True)
        raise
    return seq, result
