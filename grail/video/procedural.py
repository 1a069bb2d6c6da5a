"""The procedural video source: plan the task on the scene's character, solve every frame, and
package the exact ground truth (:class:`GroundTruth`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grail.character.model import CharacterModel
from grail.errors import GrailError
from grail.rotations import quats_from_matrices
from grail.scene.spec import ResolvedScene, load_resolved
from grail.video.body import BodyRig, MotionChannels, PoseResult
from grail.video.gt import CONTACT_NAMES, GroundTruth
from grail.video.plans import PLANS
from grail.video.tasks import MAX_WALK_SPEED, Animator
from grail.video.world import SceneWorld

PACE_ATTEMPTS = 3
MAX_HAND_ERROR_M = 0.003  # a grasped object must be reachable: palm target missed by at most this


@dataclass
class Synthesis:
    spec: ResolvedScene
    character: CharacterModel
    world: SceneWorld
    animator: Animator
    channels: MotionChannels
    pose: PoseResult
    objects: dict[str, np.ndarray]  # name -> (T,4,4)
    gt: GroundTruth


def load_scene(scene_dir: Path) -> tuple[ResolvedScene, CharacterModel]:
    scene_dir = Path(scene_dir)
    spec = load_resolved(scene_dir / "spec.yaml")
    path = scene_dir / "character.npz"
    try:
        with np.load(path) as z:
            character = CharacterModel.from_arrays(z)
    except (OSError, KeyError, ValueError) as err:
        raise GrailError(f"cannot read the character ({err})", file=path) from None
    return spec, character


def synthesize(scene_dir: Path) -> Synthesis:
    """Animate the scene's task. Raises GrailError when the task cannot be performed."""
    scene_dir = Path(scene_dir)
    spec, character = load_scene(scene_dir)
    plan = PLANS.get(spec.task)
    if plan is None:
        raise GrailError(f"the procedural animator has no plan for task {spec.task!r} (known: {', '.join(sorted(PLANS))})",
                         file=scene_dir / "spec.yaml", field="task")
    world = SceneWorld.load(scene_dir, spec)
    rig = BodyRig(character)
    try:
        animator, channels, objects = _plan_in_time(world, rig, spec.seed, plan)
    except GrailError as err:
        raise GrailError(err.reason, file=scene_dir / "spec.yaml", field=err.field) from None
    pose = rig.solve(channels)
    _check_reached(animator, pose, scene_dir)
    gt = ground_truth(spec, character, rig, animator, channels, pose, objects)
    return Synthesis(spec, character, world, animator, channels, pose, objects, gt)


def _plan_in_time(world: SceneWorld, rig: BodyRig, seed: int, plan) -> tuple[Animator, MotionChannels, dict]:
    """Plan the task at the seed's walking pace; a plan that overruns the clip is planned again
    walking faster (up to MAX_WALK_SPEED), and fails with the duration error if it still does."""
    pace = 1.0
    for attempt in range(PACE_ATTEMPTS):
        animator = Animator(world, rig, seed, pace=pace)
        plan(animator)
        overrun = animator.tl.now - animator.tl.duration
        if overrun <= 0 or attempt == PACE_ATTEMPTS - 1 or animator.style.speed >= MAX_WALK_SPEED:
            break
        walking = max(animator.tl.walking_time(), 1e-3)
        pace *= walking / max(walking - overrun - 0.05, 0.3 * walking)
    return (animator, *animator.finish())


def _check_reached(a: Animator, pose: PoseResult, scene_dir: Path) -> None:
    held = a.hand_contact
    for k, side in enumerate(("left", "right")):
        if held[k].any():
            miss = float(pose.hand_error[k, held[k]].max())
            if miss > MAX_HAND_ERROR_M:
                raise GrailError(f"the {side} hand cannot reach the object it holds (misses by {miss * 100:.1f} cm)",
                                 file=scene_dir / "spec.yaml", field="objects")


def ground_truth(spec: ResolvedScene, character: CharacterModel, rig: BodyRig, a: Animator, ch: MotionChannels,
                 pose: PoseResult, objects: dict[str, np.ndarray]) -> GroundTruth:
    tl = a.tl
    T = tl.frames
    bw = pose.bone_world
    sk = rig.sk
    rest_pos = sk.rest[:, :3, 3]
    joint_names = sorted(character.joints)
    joint_bones = [int(np.argmin(np.linalg.norm(rest_pos - character.joints[n], axis=1))) for n in joint_names]
    local = sk.local_rotations(pose.deltas)
    names = list(objects)
    held = np.zeros((T, len(names)), bool)
    for k in (0, 1):
        for o in range(len(names)):
            held[:, o] |= a.hand_object[k] == o
    contact = np.zeros((T, len(CONTACT_NAMES)), bool)
    contact[:, 0], contact[:, 1] = tl.foot_contact[0], tl.foot_contact[1]
    contact[:, 2], contact[:, 3] = a.hand_contact[0], a.hand_contact[1]
    for t0, t1 in a.pelvis_contact:
        contact[:, 4] |= (tl.times >= t0 - 1e-9) & (tl.times < t1)
    contact_object = np.full((T, len(CONTACT_NAMES)), -1)
    contact_object[:, 2], contact_object[:, 3] = a.hand_object[0], a.hand_object[1]
    phase = np.empty(T, dtype="<U16")
    for t0, name in sorted(tl.phases, key=lambda p: p[0]):
        phase[tl.times >= t0 - 1e-9] = name
    return GroundTruth(
        fps=float(spec.fps), bone_names=list(sk.names), bone_parents=sk.parents.copy(),
        bone_pos_w=bw[:, :, :3, 3].copy(), bone_quat_w=quats_from_matrices(bw[:, :, :3, :3]),
        root_pos=pose.root_pos.copy(), root_quat=quats_from_matrices(pose.deltas[:, 0]),
        joint_rot=quats_from_matrices(local), joint_names=joint_names,
        joint_pos=bw[:, joint_bones][:, :, :3, 3].copy(),
        object_names=names,
        object_pos=np.stack([objects[n][:, :3, 3] for n in names], 1) if names else np.zeros((T, 0, 3)),
        object_quat=np.stack([quats_from_matrices(objects[n][:, :3, :3]) for n in names], 1) if names else np.zeros((T, 0, 4)),
        object_held=held, contact_names=list(CONTACT_NAMES), contact=contact, contact_object=contact_object,
        phase=phase,
    )
