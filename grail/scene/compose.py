"""The compose stage: template + seed -> scene/ (spec, MJCF, USD, camera, meshes, renders).

Everything the later stages need to reconstruct motion is fixed here, before any video
exists: object geometry and resting poses, the camera, metric depth of the environment and the
robot-proportioned character.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from grail.render.offscreen import OffscreenRenderer, only_groups  # selects the GL backend first

import mujoco  # noqa: E402

from grail import __version__
from grail.assets.io import write_asset
from grail.character import CharacterModel, CharacterShape, build_character, character_mjcf, fit_g1_character, pose_character
from grail.errors import GrailError
from grail.rotations import matrix_from_quat, quat_from_matrix, yaw_quat
from grail.scene import layout as layout_mod
from grail.scene.camera import CameraConstraints, CameraSample, PinholeCamera, sample_camera
from grail.scene.mjcf import CAMERA_NAME, GROUP_FURNITURE, GROUP_OBJECT, GROUP_SUPPORT_STATIC, Extras, LightSetup, MjcfItem, scene_mjcf
from grail.scene.render_io import write_renders
from grail.scene.settle import SettleResult, settle
from grail.scene.spec import (
    ResolvedCamera,
    ResolvedCharacter,
    ResolvedItem,
    ResolvedLighting,
    ResolvedPose,
    ResolvedScene,
    SceneTemplate,
    dump_resolved,
    load_template,
)
from grail.scene.usd_export import export_usd
from grail.sequence import Sequence, StageResult, hash_file

MAX_FLOAT_M = 0.005  # an unheld object may rest at most this far above its support
MAX_PENETRATION_M = 0.003
OCCLUSION_RENDER_WIDTH = 256
MAX_CHECK_POINTS = 1500  # vertices per body used for framing checks
REGIONS_SAMPLED = ("skin", "shirt", "trousers", "shoes", "hair")


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


@dataclass
class CharacterChoice:
    model: CharacterModel
    shape: CharacterShape
    model_path: str | None
    colors: dict[str, tuple[float, float, float, float]]


class ScenePlan:
    """A validated template with its assets and layout sampled; `build` writes the files."""

    def __init__(self, template: SceneTemplate, template_path: Path, seed: int, options: ComposeOptions):
        self.template = template
        self.template_path = Path(template_path)
        self.seed = int(seed)
        self.width = options.width or template.render.width
        self.height = options.height or template.render.height
        self.id = sequence_id(self.template_path, self.seed)
        # Sampling and asset building validate everything before anything is written.
        self.assets = layout_mod.make_assets(template, self.template_path, self.seed)
        self.layout = layout_mod.place(template, self.template_path, self.seed, self.assets)

    def build(self, scene_dir: Path) -> dict:
        """Write the whole scene/ directory into `scene_dir` (a temporary stage directory)."""
        meshes = scene_dir / "meshes"
        meshes.mkdir(parents=True, exist_ok=True)
        items = [_mjcf_item(p, write_asset(p.asset, meshes)) for p in self.layout.placed]
        light = self._light()
        settled = self._settle(items, meshes, light)
        for item in items:
            if item.name in settled.poses:
                item.pos, item.quat = settled.poses[item.name]

        character = self._character()
        char_xml = character_mjcf(character.model, prefix="char", colors=character.colors)
        extras = Extras(asset_xml=char_xml.asset_xml, body_xml=char_xml.body_xml, deformable_xml=char_xml.deformable_xml)
        model = mujoco.MjModel.from_xml_string(scene_mjcf(self.id, items, str(meshes.resolve()), light, None, extras))
        data = mujoco.MjData(model)
        char_world = self._pose_character(model, data, character.model)
        view = self._camera(model, data, char_world)
        _set_model_camera(model, view.camera)
        mujoco.mj_forward(model, data)
        renders, visibility = _render_all(model, data, view.camera, items)

        self._write_files(scene_dir, items, light, view, character)
        write_renders(scene_dir / "render", renders)
        return {
            "settle_s": round(settled.simulated_s, 3),
            "max_penetration_m": round(settled.max_penetration_m, 6),
            "camera_tries": view.tries,
            "fit_residual_max_m": round(max(character.shape.fit_residuals_m.values(), default=0.0), 4),
            "object_visibility": visibility,
            "character_pixels": int(renders["mask_character"].sum()),
        }

    def _write_files(self, scene_dir: Path, items: list[MjcfItem], light: LightSetup, view: CameraSample, character: CharacterChoice) -> None:
        (scene_dir / "scene.xml").write_text(scene_mjcf(self.id, items, "meshes", light, view.camera))
        physics = mujoco.MjModel.from_xml_path(str(scene_dir / "scene.xml"))
        physics_data = mujoco.MjData(physics)
        mujoco.mj_forward(physics, physics_data)
        export_usd(physics, physics_data, scene_dir / "scene.usda")
        (scene_dir / "camera.json").write_text(json.dumps(view.camera.to_json(), indent=2) + "\n")
        (scene_dir / "spec.yaml").write_text(dump_resolved(self._resolved(items, character, view, light)))
        np.savez_compressed(scene_dir / "character.npz", **character.model.arrays(), T_world_root=self.layout.character_T)

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
        try:
            result = settle(model, mujoco.MjData(model))
        except GrailError as err:
            raise GrailError(err.reason, file=self.template_path, field="settle") from None
        if result.max_penetration_m > MAX_PENETRATION_M:
            raise GrailError(f"objects interpenetrate by {result.max_penetration_m * 1000:.1f} mm after settling", file=self.template_path, field="settle")
        for p in self.layout.placed:
            if p.role == "terrain":
                continue
            pos, quat = result.poses[p.spec_name]
            expected = 0.0
            if p.support is not None:
                expected = result.poses[p.support][0][2] + self.layout.by_name(p.support).asset.support_height
            lowest = float(np.min(np.asarray(p.asset.visual.vertices) @ matrix_from_quat(quat)[2] + pos[2]))
            if not -0.05 <= lowest - expected <= MAX_FLOAT_M:
                raise GrailError(
                    f"'{p.spec_name}' did not come to rest on its support (base at {lowest:.3f} m, support at {expected:.3f} m)",
                    file=self.template_path,
                    field="settle",
                )
        return result

    def _character(self) -> CharacterChoice:
        spec = self.template.character
        model_path = None
        if spec.model == "anny":
            shape = fit_g1_character()
            model = build_character(shape)
        else:
            if not spec.model_path:
                raise GrailError("the smplx character needs model_path", file=self.template_path, field="character.model_path")
            path = Path(spec.model_path)
            path = path if path.is_absolute() else (self.template_path.parent / path).resolve()
            shape = CharacterShape(model="smplx", params={}, height_m=0.0, fit_residuals_m={})
            try:
                model = build_character(shape, model_path=path)
            except GrailError as err:
                raise GrailError(f"{err.file}: {err.reason}" if err.file else err.reason, file=self.template_path, field="character.model_path") from None
            shape = replace(shape, height_m=float(model.height_m))
            model_path = spec.model_path
        rng = layout_mod.rng_for(self.seed, "character")
        colors = {}
        for region in REGIONS_SAMPLED:
            options = getattr(spec.clothing, region)
            rgb = options[int(rng.integers(len(options)))]
            colors[region] = (float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0)
        return CharacterChoice(model, shape, model_path, colors)

    def _pose_character(self, model: mujoco.MjModel, data: mujoco.MjData, character: CharacterModel) -> np.ndarray:
        """Pose the character at rest at its layout placement; returns its world vertices."""
        T = self.layout.character_T
        pose_character(model, data, character, np.einsum("ij,bjk->bik", T, character.bone_rest))
        mujoco.mj_forward(model, data)
        return character.vertices @ T[:3, :3].T + T[:3, 3]

    def _camera(self, model: mujoco.MjModel, data: mujoco.MjData, char_world: np.ndarray) -> CameraSample:
        spec = self.template.camera
        mujoco.mj_forward(model, data)
        must_see = {"character": layout_mod.subsample(char_world, MAX_CHECK_POINTS)}
        object_geoms = {}
        for p in self.layout.placed:
            if p.role == "object" or p.spec_name == self.template.focus:
                must_see[p.spec_name] = _settled_vertices(model, data, p)
            if p.role == "object":
                object_geoms[p.spec_name] = model.geom(f"{p.spec_name}_visual").id
        focus_points = must_see.get(self.template.focus, np.concatenate(list(must_see.values())))
        look_at = 0.5 * (_box_centre(char_world) + _box_centre(focus_points))
        constraints = CameraConstraints(
            fov_deg=_pair(spec.fov_deg),
            distance=_pair(spec.distance),
            height=_pair(spec.height),
            azimuth_deg=_pair(spec.azimuth_deg),
            look_at_jitter=spec.look_at_jitter,
            margin_px=spec.margin_px * self.width / 1280.0,
            max_tries=spec.max_tries,
        )
        small_w = min(OCCLUSION_RENDER_WIDTH, self.width)
        small_h = max(16, int(round(small_w * self.height / self.width)))
        visible_all = only_groups([GROUP_SUPPORT_STATIC, GROUP_FURNITURE, GROUP_OBJECT], skins=True)
        objects_only = only_groups([GROUP_OBJECT], skins=False)
        with OffscreenRenderer(model, small_w, small_h) as renderer:

            def unoccluded(camera: PinholeCamera) -> str | None:
                """Each object big enough to see and not hidden by the character or furniture."""
                if not object_geoms:
                    return None
                _set_model_camera(model, camera)
                mujoco.mj_forward(model, data)
                full = renderer.segmentation(data, CAMERA_NAME, visible_all)
                alone = renderer.segmentation(data, CAMERA_NAME, objects_only)
                for name, gid in object_geoms.items():
                    seen_alone = int(alone.geom_mask([gid]).sum())
                    if seen_alone < spec.min_object_pixels:
                        return f"{name} too small to see"
                    if full.geom_mask([gid]).sum() / seen_alone < spec.min_object_visibility:
                        return f"{name} occluded"
                return None

            try:
                return sample_camera(constraints, layout_mod.rng_for(self.seed, "camera"), self.width, self.height, look_at, must_see, unoccluded)
            except GrailError as err:
                raise GrailError(err.reason, file=self.template_path, field="camera") from None

    def _resolved(self, items: list[MjcfItem], character: CharacterChoice, view: CameraSample, light: LightSetup) -> ResolvedScene:
        by_name = {i.name: i for i in items}
        groups: dict[str, list[ResolvedItem]] = {"object": [], "furniture": [], "terrain": []}
        for p in self.layout.placed:
            item = by_name[p.spec_name]
            groups[p.role].append(
                ResolvedItem(
                    name=p.spec_name,
                    kind=p.asset.kind,
                    category=p.asset.category,
                    params=_plain_params(p.asset.params),
                    source=p.built.source,
                    scale=p.built.scale,
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
        camera = view.camera
        return ResolvedScene(
            id=self.id,
            template=self.template_path.name,
            task=self.template.task,
            seed=self.seed,
            prompt=self.template.render_prompt({p.spec_name: p.asset.kind for p in self.layout.placed}),
            duration_s=self.template.duration_s,
            fps=self.template.fps,
            character=ResolvedCharacter(
                model=character.shape.model,
                model_path=character.model_path,
                params={k: float(v) for k, v in character.shape.params.items()},
                height_m=float(character.shape.height_m),
                fit_residuals_m={k: float(v) for k, v in character.shape.fit_residuals_m.items()},
                pose=ResolvedPose(pos=tuple(map(float, T[:3, 3])), quat=tuple(map(float, yaw_quat(self.layout.character_yaw)))),
                colors=character.colors,
            ),
            objects=groups["object"],
            furniture=groups["furniture"],
            terrain=groups["terrain"],
            focus=self.template.focus,
            camera=ResolvedCamera(
                fov_deg=camera.fov_deg,
                width=camera.width,
                height=camera.height,
                position=tuple(map(float, camera.position)),
                look_at=tuple(map(float, view.target)),
                distance=float(view.distance),
            ),
            lighting=ResolvedLighting(direction=tuple(map(float, light.direction)), intensity=light.intensity),
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
        elif isinstance(v, np.integer):
            out[k] = int(v)
        elif isinstance(v, (list, tuple, np.ndarray)):
            out[k] = [round(float(x), 6) if isinstance(x, (float, np.floating)) else x for x in v]
        else:
            out[k] = v
    return out


def _mjcf_item(p: layout_mod.Placed, files: dict) -> MjcfItem:
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
        quat=quat_from_matrix(p.T_world[:3, :3]),
        static=bool(p.asset.static),
    )


def _settled_vertices(model: mujoco.MjModel, data: mujoco.MjData, p: layout_mod.Placed) -> np.ndarray:
    body = model.body(p.spec_name)
    v = layout_mod.subsample(p.asset.visual.vertices, MAX_CHECK_POINTS)
    return v @ data.xmat[body.id].reshape(3, 3).T + data.xpos[body.id]


def _set_model_camera(model: mujoco.MjModel, camera: PinholeCamera) -> None:
    cid = model.camera(CAMERA_NAME).id
    model.cam_pos[cid] = camera.position
    model.cam_quat[cid] = camera.mujoco_quat()
    model.cam_fovy[cid] = camera.fov_deg


def _render_all(model: mujoco.MjModel, data: mujoco.MjData, camera: PinholeCamera, items: list[MjcfItem]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
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


# ---- the stage ----------------------------------------------------------------------------


def stage_inputs(template: SceneTemplate, template_path: Path, seed: int, options: ComposeOptions) -> dict[str, str]:
    """What the scene stage depends on: the template bytes, the seed, the size, user files."""
    inputs = {"template": hash_file(template_path), "seed": str(seed), "size": f"{options.width}x{options.height}", "grail": __version__}
    user_files = [v.path for item in template.furniture + template.objects for v in item.variants if v.kind == "mesh"]
    if template.character.model_path:
        user_files.append(template.character.model_path)
    for name in user_files:
        path = Path(name) if Path(name).is_absolute() else template_path.parent / name
        inputs[f"file:{name}"] = hash_file(path) if path.is_file() else "missing"
    return inputs


def compose_sequence(
    template_path: Path, seed: int, out_root: Path, options: ComposeOptions | None = None, force: bool = False
) -> tuple[Sequence, StageResult]:
    """Compose one sequence into `<out_root>/<id>/scene/`; skipped when done and unchanged.

    Bad input raises GrailError before anything is written. A sequence directory created by
    this call is removed again when its scene fails, so a failure leaves nothing behind; an
    existing sequence keeps its previous scene and records the failure in sequence.json."""
    options = options or ComposeOptions()
    template_path = Path(template_path)
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise GrailError("output path is a file, not a directory", file=out_root, field="--out")
    if seed < 0:
        raise GrailError(f"seed must be >= 0 (got {seed})", field="--seed")
    template = load_template(template_path)
    inputs = stage_inputs(template, template_path, seed, options)
    existing = out_root / sequence_id(template_path, seed)
    if not force and (existing / "sequence.json").is_file():
        seq = Sequence.open(existing)
        if seq.is_done("scene", inputs):
            return seq, seq.run_stage("scene", lambda _: None, inputs)
    plan = ScenePlan(template, template_path, seed, options)
    fresh = not existing.exists()
    seq = Sequence.create(out_root, plan.id, spec_hash(template_path, seed, options))
    try:
        result = seq.run_stage("scene", plan.build, inputs, force=force)
    except BaseException:
        if fresh:
            shutil.rmtree(existing, ignore_errors=True)
        raise
    return seq, result
