"""A seen arm's depth ambiguity, settled by the object its hand holds.

One camera sees an elbow and a wrist as rays: the elbow lies where its ray meets the sphere of
upper-arm length about the shoulder, the wrist where its ray meets the sphere of forearm length
about the elbow, and each meeting has two points. Both reproject alike, so the keypoints cannot
choose; the fit keeps whichever its start fell into. An arm reaching toward the camera instead of
away from it puts the wrist decimetres off in depth (MediaPipe pickup_table s2, carrying: the
right wrist 47-52 cm nearer the camera than it was, the whole-arm flip 2-4 cm from the truth).

A held object chooses: in each frame a hand holds it, each of the arm's four ray-consistent
configurations is scored by how far its palm is from touching the object's surface, and the arm
is turned onto the nearest, when it is nearer than the fitted one by a margin. The stage does
this before the grasp is looked for, with the object where it lies and only for a palm that then
nearly touches it (a hand reaching for it); the joint refinement again with the object where the
grip put it, and once more where the image put it. Only arms the estimator saw surely are
flipped (`seen_arms`): a hidden arm's keypoints are a guess.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from grail.recon.body import TorchRig, hinge_axes
from grail.recon.contacts import HAND_HALF_THICKNESS_M, surface_distance
from grail.recon.hoi import rig_pose
from grail.recon.keypoints import KEYPOINTS
from grail.recon.observations import Observations

SIDES = ("left", "right")


def ray_sphere(eye: np.ndarray, point: np.ndarray, centre: np.ndarray, radius: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """(2,T,3) the two points on the camera ray through each `point` (T,3) at `radius` (T,) from
    `centre` (T,3), nearer first, and (T,) whether the ray meets the sphere at all (where it
    misses, both points are its closest approach)."""
    ray = point - eye
    ray = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    along = (ray * (centre - eye)).sum(-1)
    closest = ((centre - eye) ** 2).sum(-1) - along ** 2
    meets = radius ** 2 - closest >= 0
    half = np.sqrt(np.maximum(radius ** 2 - closest, 0.0))
    return np.stack([eye + (along - half)[:, None] * ray, eye + (along + half)[:, None] * ray]), meets


def arm_configurations(eye: np.ndarray, shoulder: np.ndarray, elbow: np.ndarray, wrist: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(4,T,3) elbows and (4,T,3) wrists of the arm configurations that reproject as the fitted
    one (T,3 each): each elbow on its ray at the upper arm's length from the shoulder, each wrist
    on its ray at the forearm's length from that elbow; and (4,T) whether each exists (a wrist ray
    may pass beyond a flipped elbow's reach). The fitted arm is one of them."""
    upper = np.linalg.norm(elbow - shoulder, axis=-1)
    fore = np.linalg.norm(wrist - elbow, axis=-1)
    elbows, wrists, exists = [], [], []
    candidates, elbow_meets = ray_sphere(eye, elbow, shoulder, upper)
    for e in candidates:
        ends, wrist_meets = ray_sphere(eye, wrist, e, fore)
        for w in ends:
            elbows.append(e)
            wrists.append(w)
            exists.append(elbow_meets & wrist_meets)
    return np.stack(elbows), np.stack(wrists), np.stack(exists)


def choose_configuration(gaps: np.ndarray, fitted: np.ndarray, margin_m: float, within_m: float = np.inf
                         ) -> np.ndarray:
    """(T,) index of the configuration to take per frame, from each one's palm gap to the object
    (C,T) and the fitted one's (T,): the nearest, if nearer than the fitted by margin_m and its gap
    under within_m; -1 keeps the fit."""
    best = np.argmin(gaps, axis=0)
    nearest = gaps[best, np.arange(gaps.shape[1])]
    return np.where((fitted - nearest > margin_m) & (nearest < within_m), best, -1)


def align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(T,3,3) the smallest rotations taking directions a (T,3) onto b (T,3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = (a * b).sum(-1)
    opposite = (s < 1e-9) & (c < 0)  # half a turn, about any axis across a
    across = np.where(np.abs(a[:, :1]) < 0.9, np.cross(a, [1.0, 0.0, 0.0]), np.cross(a, [0.0, 1.0, 0.0]))
    axis = np.where(opposite[:, None], across, axis)
    k = axis / np.maximum(np.linalg.norm(axis, axis=-1), 1e-12)[:, None]
    K = np.zeros((len(a), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 0] = -k[:, 2], k[:, 1], k[:, 2]
    K[:, 1, 2], K[:, 2, 0], K[:, 2, 1] = -k[:, 0], -k[:, 1], k[:, 0]
    return np.eye(3) + s[:, None, None] * K + (1 - c)[:, None, None] * (K @ K)


def _chain_offset(rig: TorchRig, local: np.ndarray, fore: int, wrist: int) -> np.ndarray:
    """(T,3) the wrist's offset from the forearm bone's origin in that bone's frame before its own
    turn: the bones between keep their local turns."""
    chain = [wrist]
    while rig.parents[chain[-1]] != fore:
        chain.append(rig.parents[chain[-1]])
    offsets = rig.offsets.numpy()
    turn = np.broadcast_to(np.eye(3), (len(local), 3, 3))
    out = np.zeros((len(local), 3))
    for bone in reversed(chain):
        out = out + turn @ offsets[bone]
        turn = turn @ Rotation.from_rotvec(local[:, bone]).as_matrix()
    return out


def reaim_arm(rig: TorchRig, deltas: np.ndarray, local: np.ndarray, bones: tuple[int, int, int], axis: np.ndarray,
              shoulder: np.ndarray, elbow: np.ndarray, new_elbow: np.ndarray, new_wrist: np.ndarray) -> np.ndarray:
    """(T,2,3) new local rotations (rest-relative axis-angle, `TorchRig` convention) of the upper
    arm bone and the forearm bone (`bones`: those two and the wrist's) that put the elbow at
    new_elbow and the wrist at new_wrist with the forearm turned about its hinge `axis` only, as
    an elbow bends. The upper arm's twist is what makes that possible: of the two twists that
    reach the wrist, the one that bends the elbow more (the other bends it backward). The bones
    between and below keep their local turns. Turned by the smallest rotations instead, a flipped
    arm bent its elbow off the hinge, which the fit's prior charges and the true arm does not pay
    (oracle pickup_table s2, the right arm turned onto its true flip and the fit polished: hinge
    term 194 against 5 this way; the fit's own arm 13)."""
    upper, fore, wrist = bones
    along, along2 = _unit(elbow - shoulder), _unit(new_elbow - shoulder)
    base = align(along, along2)
    middle = deltas[:, rig.parents[fore]]  # the upper arm's last bone: the forearm's parent
    hinge = middle @ axis
    hinge_along = (hinge * along).sum(-1)
    side = _unit(np.einsum("tij,tj->ti", base, hinge) - hinge_along[:, None] * along2)
    across = np.cross(along2, side)
    bone = _chain_offset(rig, local, fore, wrist)
    forearm = new_wrist - new_elbow
    # twist psi about the new upper arm: the hinge then sweeps a cone, and the wrist is reached
    # where the forearm's component along the hinge matches the bone's own
    a, b = (forearm * side).sum(-1), (forearm * across).sum(-1)
    c = (bone @ axis - hinge_along * (forearm * along2).sum(-1)) / np.sqrt(np.maximum(1 - hinge_along ** 2, 1e-12))
    spread = np.arccos(np.clip(c / np.maximum(np.hypot(a, b), 1e-12), -1.0, 1.0))
    flat = bone - (bone @ axis)[:, None] * axis
    best_bend, best_turn = None, None
    for psi in (np.arctan2(b, a) + spread, np.arctan2(b, a) - spread):
        turn = Rotation.from_rotvec(along2 * psi[:, None]).as_matrix() @ base
        target = np.einsum("tji,tj->ti", turn @ middle, forearm)  # the forearm in its parent's frame
        target = target - (target @ axis)[:, None] * axis
        bend = np.arctan2(np.cross(flat, target) @ axis, (flat * target).sum(-1))
        if best_bend is None:
            best_bend, best_turn = bend, turn
        else:
            more = bend > best_bend
            best_bend, best_turn = np.where(more, bend, best_bend), np.where(more[:, None, None], turn, best_turn)
    local_upper = np.swapaxes(deltas[:, rig.parents[upper]], 1, 2) @ best_turn @ deltas[:, upper]
    return np.stack([Rotation.from_matrix(local_upper).as_rotvec(), best_bend[:, None] * axis], 1)


def turn_arm_onto(rig: TorchRig, pos: np.ndarray, deltas: np.ndarray, local: np.ndarray, out: np.ndarray,
                  changed: np.ndarray, k: int, rows: np.ndarray, elbows: np.ndarray, wrists: np.ndarray) -> None:
    """Turn arm k (SIDES) of `out` (T,J,3), in place, at `rows` onto new elbow and wrist places
    (each (rows,3)) with `reaim_arm`, from the pose (pos, deltas, local) they were found in, and
    mark those rows in `changed` (T,2)."""
    upper, fore, hand = (rig.joint_bones[f"{SIDES[k]}_{name}"] for name in ("shoulder", "elbow", "wrist"))
    hinged, axes = hinge_axes(rig)  # the bones whose origins are those joints turn: shoulder, elbow
    turned = reaim_arm(rig, deltas[rows], local[rows], (upper, fore, hand), axes[hinged.index(fore)].numpy(),
                       pos[rows, upper], pos[rows, fore], elbows, wrists)
    out[rows, upper], out[rows, fore] = turned[:, 0], turned[:, 1]
    changed[rows, k] = True


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def posed_surface_distances(mesh: trimesh.Trimesh, points: np.ndarray, obj_pos: np.ndarray, obj_rot: np.ndarray
                            ) -> np.ndarray:
    """(C,T) distance of world points (C,T,3) to the object's surface posed at (T,3), (T,3,3)."""
    body = np.einsum("tji,ctj->cti", obj_rot, points - obj_pos[None])
    return surface_distance(mesh, body.reshape(-1, 3)).reshape(points.shape[:2])


def palm_gaps(mesh: trimesh.Trimesh, elbows: np.ndarray, wrists: np.ndarray, reach_m: float, obj_pos: np.ndarray,
              obj_rot: np.ndarray) -> np.ndarray:
    """(C,T) how far each configuration's palm (reach_m past the wrist along the forearm) is from
    touching the object's surface (a hand's half thickness out)."""
    along = wrists - elbows
    palms = wrists + reach_m * along / np.linalg.norm(along, axis=-1, keepdims=True)
    return np.abs(posed_surface_distances(mesh, palms, obj_pos, obj_rot) - HAND_HALF_THICKNESS_M)


def seen_arms(obs: Observations, min_conf: float) -> np.ndarray:
    """(T,2) left and right arms whose elbow and wrist were both detected with min_conf."""
    conf = obs.keypoint_conf
    return np.stack([(conf[:, KEYPOINTS.index(f"{side}_elbow")] >= min_conf)
                     & (conf[:, KEYPOINTS.index(f"{side}_wrist")] >= min_conf) for side in SIDES], axis=1)


def settle_arm_flips(rig: TorchRig, root: np.ndarray, local: np.ndarray, eye: np.ndarray, held: np.ndarray,
                     mesh: trimesh.Trimesh, obj_pos: np.ndarray, obj_rot: np.ndarray, palm_reach_m: np.ndarray,
                     margin_m: float, within_m: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """The pose's local rotations (T,J,3) with each holding arm turned onto the configuration whose
    palm is nearest to touching the object (`choose_configuration`), and (T,2) the frames changed
    per hand. `held` (T,2): a hand holds the object, posed at obj_pos (T,3), obj_rot (T,3,3);
    `eye`: the camera centre; palm_reach_m (2,): each palm centre's distance from its wrist."""
    pos, deltas = rig_pose(rig, root, local)
    out = np.array(local, copy=True)
    changed = np.zeros(held.shape, bool)
    for k, side in enumerate(SIDES):
        frames = np.flatnonzero(held[:, k])
        if not len(frames):
            continue
        bones = {name: rig.joint_bones[f"{side}_{name}"] for name in ("shoulder", "elbow", "wrist")}
        S, E, W = (pos[frames, bones[name]] for name in ("shoulder", "elbow", "wrist"))
        elbows, wrists, exists = arm_configurations(eye, S, E, W)
        gaps = np.where(exists, palm_gaps(mesh, elbows, wrists, palm_reach_m[k], obj_pos[frames], obj_rot[frames]), np.inf)
        fitted = palm_gaps(mesh, E[None], W[None], palm_reach_m[k], obj_pos[frames], obj_rot[frames])[0]
        pick = choose_configuration(gaps, fitted, margin_m, within_m)
        take = pick >= 0
        if not take.any():
            continue
        chosen = (pick[take], np.flatnonzero(take))
        turn_arm_onto(rig, pos, deltas, local, out, changed, k, frames[take], elbows[chosen], wrists[chosen])
    return out, changed
