"""The reconstruct stage: ``video/video.mp4`` + the known scene -> ``recon/`` for one sequence.

1. decode the video and check it against the scene camera (grail.recon.video_input);
2. find the person's keypoints (MediaPipe, or the oracle for benchmarks: grail.recon.perception);
3. fit the character's pose sequence (grail.recon.fit_human);
4. track the movable object from its known first-frame pose (grail.recon.object_track);
5. label contacts from the motion, refine human and object jointly, and label again
   (grail.recon.contacts, grail.recon.refine);
6. measure, filter, and write ``hoi.npz``, ``observations.npz``, ``metrics.json`` and
   ``overlay.mp4`` into the stage's temporary directory (renamed into place by the store).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from grail.render.offscreen import select_gl_backend  # before anything below loads mujoco

select_gl_backend()

from grail import __version__  # noqa: E402
from grail.recon.arm_flip import seen_arms, settle_arm_flips
from grail.recon.body import TorchRig, rest_height, rotvec_to_matrix
from grail.recon.contacts import (ContactLabels, ContactOptions, foot_contacts, hand_contacts, label_contacts,
                                  palm_surface_gap, seated)
from grail.recon.environment import environment_depth
from grail.recon.fit_human import FitOptions, fit_human
from grail.recon.held_arms import HeldArmOptions, agreed_hold, held_arm_flips
from grail.recon.interaction import (ColourEvidence, GripTrack, InteractionOptions, body_mask, departure_frame,
                                    grip_track, hand_mask, torso_heading)
from grail.recon.hoi import build_hoi, palm_offsets, palms, rig_pose, save_hoi
from grail.recon.keypoints import KEYPOINTS, keypoint_offsets, landmark_points
from grail.recon.observations import Observations
from grail.recon.object_track import (ObjectModel, ObjectTrack, RegionTracker, SilhouetteEnergy, TrackOptions,
                                      rotvec_from_quat)
from grail.recon.perception import PerceptionOptions, perceive_human
from grail.recon.physical import SceneSolids
from grail.recon.quality import FilterThresholds, QualityInputs, quality_metrics
from grail.recon.refine import RefineOptions, SceneTerms, project, refine
from grail.recon.supports import SupportMap, under_object
from grail.recon.video_input import VideoInput, load_video
from grail.rotations import matrices_from_quats, quats_from_matrices
from grail.scene.camera import PinholeCamera
from grail.scene.spec import load_resolved
from grail.sequence import Sequence, StageResult, hash_file
from grail.video.gt import GroundTruth

STAGE = "recon"
SUPPORT_HALF_EXTENT_M = 4.0


@dataclass
class ReconOptions:
    perception: PerceptionOptions = field(default_factory=PerceptionOptions)
    fit: FitOptions = field(default_factory=FitOptions)
    track: TrackOptions = field(default_factory=TrackOptions)
    contacts: ContactOptions = field(default_factory=ContactOptions)
    interaction: InteractionOptions = field(default_factory=InteractionOptions)
    refine: RefineOptions = field(default_factory=RefineOptions)
    thresholds: FilterThresholds = field(default_factory=FilterThresholds)
    refine_grid: int = 32   # image samples per window side in the joint refinement (the tracker uses 64)
    # Before the grasp is known: a seen arm is turned onto the depth flip (refine.flip_margin_m)
    # whose palm comes this near touching the object where it lies (a hand reaching for it), so
    # the grasp is found where the hand arrives. None: off.
    reach_flip_m: float | None = 0.03
    # Once the grasp is found: each holding arm's flip chosen through the whole hold (`held_arms`),
    # and the grip made again with those arms. 20 object clips: object 3.74 -> 3.09 cm (oracle),
    # 4.09 -> 3.57 (MediaPipe). None: off.
    held_arms: HeldArmOptions | None = field(default_factory=HeldArmOptions)
    overlay: bool = True
    threads: int = 1


@dataclass
class Reconstruction:
    """Everything the stage computed, before it is written."""

    video: VideoInput
    obs: Observations
    hoi: GroundTruth
    track: ObjectTrack | None
    object_model: ObjectModel | None
    metrics: dict


@dataclass
class SceneInputs:
    """What the reconstruction knows of a sequence's scene: the character, its supports and
    solids, where it starts, and the interaction object (none in a scene without one)."""

    rig: TorchRig
    support: SupportMap
    solids: SceneSolids
    placement: np.ndarray    # (4,4) T_world_root at the first frame
    object_name: str | None
    object_model: ObjectModel | None
    pos0: np.ndarray | None
    quat0: np.ndarray | None


def stage_inputs(seq: Sequence, options: ReconOptions) -> dict[str, str]:
    scene = seq.path / "scene"
    inputs = {name: hash_file(scene / name) for name in ("spec.yaml", "scene.xml", "camera.json", "character.npz")}
    inputs["video.mp4"] = hash_file(seq.path / "video" / "video.mp4")
    if options.perception.human == "oracle" and (seq.path / "video" / "gt.npz").is_file():
        inputs["gt.npz"] = hash_file(seq.path / "video" / "gt.npz")
    inputs["settings"] = json.dumps(asdict(options), sort_keys=True, default=str)
    inputs["grail"] = __version__
    return inputs


def movable_objects(seq_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, first-frame position, wxyz quaternion) of every non-static object in spec.yaml."""
    spec = load_resolved(Path(seq_dir) / "scene" / "spec.yaml")
    return [(o.name, np.asarray(o.pose.pos, float), np.asarray(o.pose.quat, float) / np.linalg.norm(o.pose.quat))
            for o in spec.objects if not o.static]


def load_scene(seq_dir: Path) -> SceneInputs:
    """The scene a sequence's reconstruction rests on, from its scene/ folder."""
    scene = seq_dir / "scene"
    rig = TorchRig.load(scene / "character.npz")
    with np.load(scene / "character.npz", allow_pickle=False) as z:
        placement = np.array(z["T_world_root"], float)  # the character's known first-frame root pose
    objects = movable_objects(seq_dir)
    movable = tuple(name for name, _, _ in objects)
    support = SupportMap.from_scene(scene / "scene.xml", placement[:2, 3], SUPPORT_HALF_EXTENT_M, objects=movable)
    solids = SceneSolids.from_scene(scene / "scene.xml", movable)
    if not objects:
        return SceneInputs(rig, support, solids, placement, None, None, None, None)
    name, pos0, quat0 = objects[0]  # the interaction object; templates have one movable object
    return SceneInputs(rig, support, solids, placement, name, ObjectModel.from_scene(scene, name), pos0, quat0)


def reconstruct(seq_dir: Path, options: ReconOptions, progress: Callable[[int, int], None] | None = None) -> Reconstruction:
    """Run the whole reconstruction of a sequence; nothing is written."""
    torch.set_num_threads(options.threads)
    seq_dir = Path(seq_dir)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    video = load_video(seq_dir)
    scene = load_scene(seq_dir)
    lap("load")
    obs = perceive_human(video, seq_dir, options.perception, progress)
    lap("perception")
    fit = fit_human(obs, video.camera, scene.rig, scene.support, options.fit, first_root=scene.placement,
                    solids=scene.solids)
    lap("human_fit")
    offsets = palm_offsets(seq_dir / "scene" / "character.npz", scene.rig)
    root, local = fit.root_pos, fit.local
    obj = _ObjectStart(None, None, None, None, None)
    if scene.object_model is not None:
        if options.reach_flip_m is not None and options.refine.flip_margin_m is not None:
            local = _reaching_arms(scene, video, obs, root, local, offsets, options)
        obj = _object_start(scene, video, root, local, offsets, options)
        if options.held_arms is not None and obj.grip.grasp is not None:
            local, obj = _held_arms(scene, video, root, local, offsets, obj, options)
    lap("object")
    contacts = _contacts(scene, root, local, offsets, None, None, video.fps, options.contacts, obj.grip)
    env = environment_depth(seq_dir / "scene" / "scene.xml", (scene.object_name,) if scene.object_name else (),
                            video.camera.width, video.camera.height)
    terms = SceneTerms(video.camera, env, scene.support, _hull(scene.object_model),
                       scene.object_model.mesh if scene.object_model is not None else None,
                       scene.pos0 if scene.pos0 is not None else np.zeros(3),
                       rotvec_from_quat(scene.quat0) if scene.quat0 is not None else np.zeros(3))
    touched = obj.grip is not None and obj.grip.grasp is not None
    result = refine(fit.terms, scene.rig, obs, root, local, offsets, contacts, options.refine, terms,
                    obj.energy if touched else None, obj.pos if touched else None, obj.rotvec if touched else None)
    if obj.pos is not None and not touched:  # never taken: it stays at its known first pose
        result.object_pos, result.object_rotvec = obj.pos, obj.rotvec
    contacts = _contacts(scene, result.root, result.local, offsets, result.object_pos, result.object_rotvec,
                         video.fps, options.contacts)
    track = obj.track
    lap("refine")
    names = _joint_names(scene.rig)
    object_names, object_pos, object_quat = [], np.zeros((obs.frames, 0, 3)), np.zeros((obs.frames, 0, 4))
    if result.object_pos is not None:
        object_names = [scene.object_name]
        object_pos = result.object_pos[:, None]
        object_quat = quats_from_matrices(rotvec_to_matrix(torch.as_tensor(result.object_rotvec)).numpy())[:, None]
    hoi = build_hoi(scene.rig, result.root, result.local, video.fps, names, object_names, object_pos, object_quat, contacts)
    metrics = _metrics(scene, obs, obj, result, offsets, contacts, video, options)
    if obj.grip is not None:
        metrics["interaction"] = {"grasp_frame": obj.grip.grasp, "release_frame": obj.grip.release,
                                  "hands": [side for side, on in zip(("left", "right"), obj.grip.hands) if on]}
    metrics["refine_terms"] = {k: round(v, 3) for k, v in result.terms.items()}
    metrics["timings_s"] = timings
    return Reconstruction(video, obs, hoi, track, scene.object_model, metrics)


def reconstruct_dir(seq_dir: Path, out_dir: Path, options: ReconOptions,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the stage's files into out_dir; returns the stage info kept in sequence.json."""
    t0 = time.perf_counter()
    rec = reconstruct(seq_dir, options, progress)
    save_hoi(out_dir / "hoi.npz", rec.hoi, rec.obs.estimator, rec.obs.oracle)
    _save_observations(out_dir / "observations.npz", rec)
    if options.overlay:
        from grail.recon.overlay import write_overlay

        t1 = time.perf_counter()
        write_overlay(out_dir / "overlay.mp4", rec)
        rec.metrics["timings_s"]["overlay"] = round(time.perf_counter() - t1, 3)
    rec.metrics["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    (out_dir / "metrics.json").write_text(json.dumps(rec.metrics, indent=2) + "\n")
    f = rec.metrics["filter"]
    return {"frames": rec.metrics["frames"], "estimator": rec.obs.estimator, "oracle": rec.obs.oracle,
            "passed": f["passed"], "reasons": f["reasons"], "reprojection_px": rec.metrics["human"]["reprojection_px"]}


def reconstruct_sequence(seq_dir: Path, options: ReconOptions | None = None, force: bool = False,
                         progress: Callable[[int, int], None] | None = None) -> tuple[Sequence, StageResult]:
    """Run the reconstruct stage of a sequence (skipped when done and unchanged)."""
    options = options or ReconOptions()
    seq_dir = Path(seq_dir)
    seq = Sequence.open_after(seq_dir, "video", "grail generate")
    inputs = stage_inputs(seq, options)
    return seq, seq.run_stage(STAGE, lambda tmp: reconstruct_dir(seq_dir, Path(tmp), options, progress), inputs,
                              force=force)


def _hull(model: ObjectModel | None) -> np.ndarray:
    return np.zeros((0, 3)) if model is None else np.asarray(model.mesh.convex_hull.vertices)


@dataclass
class _ObjectStart:
    """The object before the joint refinement: the region tracker's raw track (kept as an
    observation), the image term with the fitted hands left out, and the interaction's trajectory."""

    track: ObjectTrack | None
    energy: SilhouetteEnergy | None
    grip: GripTrack | None
    pos: np.ndarray | None
    rotvec: np.ndarray | None
    evidence: ColourEvidence | None = None
    departed: int | None = None
    ignore: np.ndarray | None = None  # (T,H,W) what the image term leaves out


def _held_arms(scene: SceneInputs, video: VideoInput, root: np.ndarray, local: np.ndarray, offsets: np.ndarray,
               obj: _ObjectStart, options: ReconOptions) -> tuple[np.ndarray, _ObjectStart]:
    """The fitted local rotations with the holding arms on the depth flips `held_arm_flips` chose
    through the grip's hold, and the object's start with the grip made again by those arms (the
    grip carries the object by the wrists). Where that grip grasps before the chosen arms begin,
    they are chosen again from its grasp (`agreed_hold`); where no choice agrees, both are left
    as they were."""

    def choose(start: _ObjectStart) -> tuple[np.ndarray, np.ndarray]:
        grip = start.grip
        return held_arm_flips(scene.rig, root, local, video.camera.T_world_cam[:3, 3], grip.grasp, grip.release,
                              grip.hands, scene.object_model.mesh, scene.pos0, matrices_from_quats(scene.quat0),
                              np.linalg.norm(offsets, axis=-1), video.fps, options.held_arms)

    agreed = agreed_hold(obj, lambda start: start.grip.grasp, choose,
                         lambda arms: _object_start(scene, video, root, arms, offsets, options, reuse=obj),
                         options.held_arms)
    if agreed is None:
        obj.energy.set_ignore(obj.ignore)  # the image term is shared: as it was
        return local, obj
    return agreed


def _object_start(scene: SceneInputs, video: VideoInput, root: np.ndarray, local: np.ndarray, offsets: np.ndarray,
                  options: ReconOptions, reuse: _ObjectStart | None = None) -> _ObjectStart:
    """`reuse`: a start made with the same arms up to their depth flips, whose region track, image
    term, colour evidence and departure frame it keeps (the flips reproject alike)."""
    rig, model = scene.rig, scene.object_model
    pos, deltas = rig_pose(rig, root, local)
    hand = palms(pos, deltas, rig, offsets)
    bones = {k: [rig.joint_bones[f"{side}_{k}"] for side in ("left", "right")] for k in ("elbow", "wrist")}
    wrists = pos[:, bones["wrist"]]
    mask = hand_mask(video.camera, pos[:, bones["elbow"]], wrists, 2 * hand - wrists, options.interaction)
    joints = _named_joints(rig, pos)
    if reuse is not None:
        track, energy, evidence, departed = reuse.track, reuse.energy, reuse.evidence, reuse.departed
    else:
        track = RegionTracker(options.track).track(video.frames, video.camera, model, scene.pos0, scene.quat0)
        energy = SilhouetteEnergy(video.frames, video.camera, model, scene.pos0, scene.quat0,
                                  replace(options.track, grid=options.refine_grid))
        evidence = ColourEvidence(energy.posterior, len(video.frames), mask)
        departed = None
        if options.interaction.departure:
            rest_depth = np.full(len(pos), video.camera.world_to_camera(scene.pos0[None])[0, 2])
            departed = departure_frame(evidence, video.camera, energy.hull, scene.pos0,
                                       matrices_from_quats(scene.quat0), body_mask(video.camera, joints, rest_depth),
                                       options.interaction)
    energy.set_ignore(mask)
    grip = grip_track(model, energy.hull, scene.pos0, scene.quat0, hand, wrists, torso_heading(joints), video.camera,
                      evidence, scene.support, options.interaction, departed)
    if options.interaction.body_occlusion and grip.grasp is not None:  # the refinement's image term only
        mask = mask | body_mask(video.camera, joints, video.camera.world_to_camera(grip.pos)[:, 2])
        energy.set_ignore(mask)
    return _ObjectStart(track, energy, grip, grip.pos, rotvec_from_quat(quats_from_matrices(grip.rot)), evidence,
                        departed, mask)


def _reaching_arms(scene: SceneInputs, video: VideoInput, obs: Observations, root: np.ndarray, local: np.ndarray,
                   offsets: np.ndarray, options: ReconOptions) -> np.ndarray:
    """The fitted local rotations with each seen arm whose depth flip nearly touches the object
    where it lies turned onto that flip (`reach_flip_m`)."""
    T = len(root)
    flipped, _ = settle_arm_flips(scene.rig, root, local, video.camera.T_world_cam[:3, 3],
                                  seen_arms(obs, options.refine.flip_seen_conf), scene.object_model.mesh,
                                  np.repeat(scene.pos0[None], T, 0), np.repeat(matrices_from_quats(scene.quat0)[None], T, 0),
                                  np.linalg.norm(offsets, axis=-1), options.refine.flip_margin_m, options.reach_flip_m)
    return flipped


def _named_joints(rig: TorchRig, pos: np.ndarray) -> dict[str, np.ndarray]:
    """Each named joint's track (T,3) from the posed bones (T,B,3)."""
    return {name: pos[:, bone] for name, bone in rig.joint_bones.items()}


def _joint_names(rig: TorchRig) -> list[str]:
    return sorted(rig.joint_bones)


def _rest_heights(rig: TorchRig) -> tuple[float, float]:
    """At rest: the ankle's height above the ground, and the pelvis's height above the ankle."""
    ankle = rest_height(rig, "left_ankle")
    return ankle, rest_height(rig, "pelvis") - ankle


def _contacts(scene: SceneInputs, root: np.ndarray, local: np.ndarray, offsets: np.ndarray, obj_pos: np.ndarray | None,
              obj_rotvec: np.ndarray | None, fps: float, options: ContactOptions,
              grip: GripTrack | None = None) -> ContactLabels:
    """Feet and seat from the motion; hands from the grip (before the refinement) or from
    proximity and relative velocity on the refined motion."""
    pos, deltas = rig_pose(scene.rig, root, local)
    rig = scene.rig
    ankles = pos[:, [rig.joint_bones["left_ankle"], rig.joint_bones["right_ankle"]]]
    rest_ankle, standing = _rest_heights(rig)
    feet = foot_contacts(ankles, scene.support, rest_ankle, fps, options)
    seat = seated(pos[:, 0], ankles, scene.support, standing, options)
    hands = None
    if grip is not None:
        hands = grip.held[:, None] & np.array(grip.hands)[None]
    elif obj_pos is not None:
        rot = rotvec_to_matrix(torch.as_tensor(obj_rotvec)).numpy()
        hands = hand_contacts(palms(pos, deltas, rig, offsets), obj_pos, rot, scene.object_model.mesh, fps, options)
    return label_contacts(hands, feet, seat, 1 if scene.object_model is not None else 0)


def _metrics(scene: SceneInputs, obs, obj: _ObjectStart, result, offsets: np.ndarray,
             contacts: ContactLabels, video: VideoInput, options: ReconOptions) -> dict:
    rig = scene.rig
    pos, deltas = rig_pose(rig, result.root, result.local)
    joints = rig.joints(torch.as_tensor(pos), KEYPOINTS).numpy()
    seen_points = landmark_points(rig, torch.as_tensor(pos), torch.as_tensor(deltas),
                                  torch.as_tensor(keypoint_offsets(obs.estimator)),
                                  torch.as_tensor(video.camera.T_world_cam[:3, 3]))
    uv, _ = project(seen_points, video.camera)
    ankles = joints[:, [KEYPOINTS.index("left_ankle"), KEYPOINTS.index("right_ankle")]]
    rest_ankle, _ = _rest_heights(rig)
    T = obs.frames
    ankle_depth = np.maximum(0.0, scene.support(ankles.reshape(-1, 3)).reshape(T, 2) + rest_ankle - ankles[..., 2])
    palm_gap = np.full((T, 2), np.nan)
    object_depth = np.zeros(T)
    object_pos = score = lost = None
    if result.object_pos is not None:
        rot = rotvec_to_matrix(torch.as_tensor(result.object_rotvec)).numpy()
        p = palms(pos, deltas, rig, offsets)
        palm_gap = palm_surface_gap(scene.object_model.mesh, p, result.object_pos, rot)
        hull = result.object_pos[:, None] + np.einsum("tij,vj->tvi", rot, _hull(scene.object_model))
        object_depth = np.maximum(0.0, under_object(scene.support, hull) - hull[..., 2]).max(axis=1)
        object_pos = result.object_pos
        # the fitted hands' pixels left out, and the body's where it is in front of the object
        hidden = _body_in_front(video.camera, _named_joints(rig, pos))
        depth = video.camera.world_to_camera(object_pos)[:, 2]
        agree = np.array([obj.evidence.agreement(t, video.camera, obj.energy.hull, object_pos[t], rot[t],
                                                 hidden(t, depth[t])) for t in range(T)])
        # relative to frame 0 at the known first pose: how much a colour-alike table or floor
        # confuses the colour model is the scene's, not the reconstruction's
        rot0 = matrices_from_quats(scene.quat0)
        depth0 = video.camera.world_to_camera(scene.pos0[None])[0, 2]
        baseline = obj.evidence.agreement(0, video.camera, obj.energy.hull, scene.pos0, rot0, hidden(0, depth0))[0]
        relative = np.minimum(1.0, agree[:, 0] / max(baseline, 1e-6))
        score = np.where(agree[:, 1] >= options.thresholds.visible_share, relative, np.nan)
        lost = score < options.thresholds.lost_agreement
    q = QualityInputs(fps=video.fps, keypoints=obs.keypoints, keypoint_conf=obs.keypoint_conf, projected=uv.numpy(),
                      joints=joints, hip_index=(KEYPOINTS.index("left_hip"), KEYPOINTS.index("right_hip")),
                      palm_gap=palm_gap, hand_contact=contacts.contact[:, 2:4], ankle_depth=ankle_depth,
                      object_depth=object_depth, object_pos=object_pos, object_score=score, object_lost=lost)
    m = quality_metrics(q, options.thresholds)
    m.update(estimator=obs.estimator, oracle=bool(obs.oracle),
             video={"width": video.camera.width, "height": video.camera.height, "fps": video.fps,
                    "source_fps": video.source_fps, "source_frames": video.source_frames})
    return m


def _body_in_front(camera: PinholeCamera, joints: dict[str, np.ndarray]) -> Callable[[int, float], np.ndarray]:
    """hidden(t, depth) -> (H,W) bool: the reconstructed body's pixels at frame t where it is nearer
    the camera than `depth` (m along the optical axis). The mask-tracking measure leaves them out
    as it leaves out the hands: a box carried behind the body is hidden, not lost (oracle
    pickup_ground s2, its box 3.3 cm off: mask error 0.26 and 37 frames lost as scored with the body's
    pixels, 0.14 and none without them)."""
    def hidden(t: int, depth: float) -> np.ndarray:
        return body_mask(camera, {name: track[t:t + 1] for name, track in joints.items()}, np.array([depth]))[0]
    return hidden


def _save_observations(path: Path, rec: Reconstruction) -> None:
    """observations.npz: the keypoints, plus the region tracker's raw object track (what it saw)."""
    extra = None
    if rec.track is not None:
        extra = {"object_track_pos": rec.track.pos, "object_track_quat": rec.track.quat,
                 "object_track_score": rec.track.score, "object_track_lost": rec.track.lost}
    rec.obs.save(path, extra)
