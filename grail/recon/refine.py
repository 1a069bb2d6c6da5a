"""Interaction-aware joint refinement of the human and the object (the GRAIL paper's loss):

    L = λ_kp·L_kp + λ_proj·L_proj + λ_depth·L_depth + λ_cont·L_cont + λ_reg·L_reg

- L_kp: the human fit's objective (robust keypoint reprojection with its pose priors, smoothness
  and feet-on-support terms: grail.recon.fit_human.HumanTerms).
- L_proj: the object's silhouette against the image's object region (grail.recon.object_track).
  No term moves the object along the camera ray (`RefineOptions.object_along_ray`): its distance
  from the camera stays the one its start (the grip) gave it.
- L_depth: consistency with the known environment: the object is not behind the environment's
  rendered depth at its pixel, its lowest points are not below the support under them, and once
  let go it rests on that support, upright as it first stood. The body's keypoints are left out:
  a keypoint is no sign that its joint is visible (the oracle reports every joint, MediaPipe
  guesses hidden ones), and a seated child's hips seen behind the seat's edge were pulled out in
  front of it (oracle sit_chair s2: 20 -> 32 mm). The body stays out of the scene's solids by the
  human fit's own term, part of L_kp.
- L_cont: contacts from grail.recon.contacts: a touching palm keeps its place on the object over
  each contact interval (the grasp is rigid; held loosely while the object moves alone, since the
  fitted palm is the weaker evidence there), taken from the start and again once the object has
  been refined alone; held, the object stays near where the grip carries it and as it turns it
  (`RefineOptions.carry_m`); and the first frame holds the scene's object pose (untouched from
  the first frame, it is that pose exactly). An untouched object stays still by construction: each run of untouched frames shares one pose (`still_runs`), so
  no term can drag it; let go, that pose is where the interaction set it down (`RefineOptions.pin_rest`).
- L_reg: object acceleration and angular acceleration.

Every term is a squared residual over a stated scale (RefineWeights), so a residual of one scale
costs one; λ = 0 removes a term, which is how the ablations run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import trimesh

from grail.recon.arm_flip import seen_arms, settle_arm_flips
from grail.recon.body import TorchRig, rotvec_to_matrix
from grail.recon.contacts import HAND_HALF_THICKNESS_M, ContactLabels, runs
from grail.recon.keypoints import KEYPOINTS
from grail.recon.observations import Observations
from grail.recon.optim import minimise
from grail.recon.supports import under_object
from grail.scene.camera import PinholeCamera


@dataclass
class RefineWeights:
    kp: float = 1.0
    proj: float = 1.0
    depth: float = 1.0
    cont: float = 1.0
    reg: float = 1.0


@dataclass
class RefineOptions:
    weights: RefineWeights = field(default_factory=RefineWeights)
    iterations: int = 60
    depth_m: float = 0.02          # behind the environment's depth
    support_m: float = 0.002       # the object's hull below its support (penetration is not allowed)
    grasp_m: float = 0.01          # palm drifting on the object while touching ...
    # ... while the object moves alone first (`object_first`), the human held: there the palms are
    # the fitted hands, decimetres off in depth, and at grasp_m they held the object to them
    # against its image. 20 object clips: object 3.57 -> 3.51 cm and 6.4 -> 4.5 degrees
    # (MediaPipe), 3.09 -> 3.02 cm and 3.7 -> 1.7 degrees (oracle), contact and filter passes
    # alike. At 0.03 in the joint stage too (3.44 and 2.97 cm), hands left the object: contact
    # 0.003 -> 0.006 m, three filter passes lost to object travel with no hand on it. With the
    # object kept at its distance from the camera (`object_along_ray`), 0.03 -> 0.06: 3.19 -> 3.09
    # cm (MediaPipe, every template better), 2.78 -> 2.77 (oracle; 2.15 -> 1.94 degrees), MPJPE
    # within 0.12 mm, one filter pass lost (MediaPipe place_table s4: mask error 0.231 > 0.2).
    # Before that change, 0.06 cost MediaPipe pickup_ground s0 4.6 mm of MPJPE.
    object_grasp_m: float = 0.06
    first_m: float = 0.002         # first frame against the scene's object pose
    first_rad: float = 0.01
    accel_m: float = 0.01          # object acceleration, m/frame^2
    accel_rad: float = 0.05        # rad/frame^2
    # Silhouette energy units per cost unit. The energy is in shares of the object's image area, so
    # at 1.0 a silhouette 5 cm off (a sixth of the box) cost less than a palm 1 cm off its place and
    # the image moved nothing (ablation without L_proj: within 0.4 cm). At 0.01 a share of 1 %
    # costs one. Oracle push_box s0-2: 5.5 -> 2.4 cm.
    proj_scale: float = 0.01
    proj_stride: int = 2           # every other frame of the image term (neighbours move together)
    # The refinement moves the object across the camera ray only; its distance from the camera
    # stays its start's (the grip: carried from its known first pose by the fitted wrist). The
    # image's depth cue is the outline's size: 10 cm at 3.5 m is 3 % of a 40 px box, a ring of
    # 0.6 px, which the colours of the outline's own pixels decide (edge blur, shading, a shirt
    # behind it), not the object's distance: at the true poses of oracle place_table s3 the
    # energy falls steadily for 30 cm away from the camera (by 0.1-0.4 object areas a frame).
    # The contact term's pull along the ray is no better: it holds the object to palms whose depth
    # the same fitted arms give, moved by the refinement's own keypoint and keep terms; so the
    # palms go to the object instead. 20 object clips: object 3.51 -> 3.19 cm (MediaPipe), 3.02 ->
    # 2.78 (oracle); their MPJPE 41.9 -> 42.1 and 23.6 -> 24.1 mm. On 11 MediaPipe clips, 5.08 ->
    # 4.62 cm; held at its distance only while the object moves alone, 4.87; held softly (5 cm), 4.84.
    object_along_ray: bool = False
    # The object alone first, the human held: the object's start (the grip, from a hand that may be
    # decimetres off) is the weaker evidence, and with both free from the start the contact term
    # dragged the body to it (MediaPipe place_table s4: 48 -> 110 mm). MediaPipe, 13 manipulation
    # clips: 61.1 -> 55.0 mm.
    object_first: bool = True
    # After the object moves alone, each palm's place on it is taken again from where the image put
    # the object: places from the grip's start held the hands to a misplaced object.
    regrasp: bool = True
    # Let go, nothing holds the object up: it rests on its support, upright as it first stood. A
    # silhouette alone is weak along the camera ray (oracle push_box s2: set down right, refined
    # 32 cm off along the ray and 8 cm up).
    rest_on_support: bool = True
    # ... and stays where the interaction set it down: the frames after the release, summed, at full
    # resolution and with only the hands left out (`interaction.settle`), say more than this term's
    # windows, which the body in front of a table can hide whole (oracle place_table s3: every
    # pose within 30 cm cost the same, and the rest pose drifted from 2.5 to 33 cm off). So does
    # its turn, the one it was carried in at the release: left free, the image turned it (oracle
    # push_box s1 after the release: 62 degrees off, pinned 1.2; place_table s3: 27 -> 3.8; 20
    # object clips: oracle 5.7 -> 4.2 degrees, MediaPipe 6.1 -> 6.3).
    pin_rest: bool = True
    # Together, the body's keypoints stay within keep_m of where the fit put them (a hinge, stiff
    # beyond); elbows and wrists are free, so the hands still reach the object. The contact term
    # pulled a well-fitted body to an object the image had left 40 cm off (MediaPipe place_table
    # s4: held frames 46 -> 111 mm). None: no bound. MediaPipe, six clips: 65.4 -> 58.3 mm; with
    # the arms bound at 15 cm too, 57.2 but hands 1-2 cm short of the object (two filter passes lost).
    # Since the object keeps its distance from the camera (`object_along_ray`), the body goes to the
    # object, and within a 5 cm hinge it went: the body's joints (arms aside) in the held frames of
    # oracle push_box and place_table, s0-4, went 20.2 -> 25.0 mm from the fit to the refinement.
    # At 0 (a plain quadratic about the fit, keep_scale_m a centimetre): 20.2 -> 20.5. 20 object
    # clips: MPJPE 24.2 -> 22.7 mm (oracle), 42.2 -> 41.7 (MediaPipe); object 2.77 -> 2.80 cm and
    # 3.09 -> 3.16 (the palms, which stay nearer the fit, pull it across the ray). At 0.02: 23.4
    # and 41.9 mm, 2.77 and 3.14 cm.
    keep_m: float | None = 0.0
    keep_scale_m: float = 0.01
    # Held, the object stays within about carry_m and carry_rad of where the grip carries it and
    # how it turns it (its start): the grip's image is the wrists', right to a few pixels, while the
    # object's own, under the real hands and the fitted ones left out, drew it off across the ray
    # (oracle place_table, held frames, across the ray: grip 2.7 cm, refined 4.1; push_box 0.9 and
    # 2.0), and the palms, hung on the hands' unobserved twist, pulled it further (push_box without
    # the image: 5.4). 20 object clips: object 3.16 -> 3.11 cm and 4.1 -> 3.2 degrees (MediaPipe),
    # 2.80 -> 2.66 cm and 1.95 -> 1.48 degrees (oracle); filter passes 15 -> 16 and 14 -> 16; MPJPE
    # within 0.05 mm; contact 0.0037 -> 0.0043 m (oracle). Position alone (carry_rad None):
    # rotation 4.1 -> 5.2 degrees, the image turned what it could no longer move. Looser, oracle
    # place_table and push_box: 5.00 and 1.15 cm at 0.02 m, 5.15 and 1.20 at 0.05, 4.85 and 1.09
    # at 0.01. Tighter (0.005): 3.11 -> 3.18 cm (MediaPipe, 20 object clips), 2.64 -> 2.78 (oracle,
    # the first 7). None: off.
    carry_m: float | None = 0.01
    carry_rad: float | None = 0.05
    # A holding arm is turned onto the depth flip (`arm_flip`) whose palm is nearest to touching
    # the object, when nearer by this margin, at the grip's object and again once the object has
    # moved alone: the keypoints cannot tell the flips apart and the fit keeps the one its start
    # fell into (MediaPipe pickup_table s3: the right wrist carried 50 cm nearer the camera; 61.2
    # -> 40.4 mm, object 14.5 -> 1.6 cm). None: off.
    flip_margin_m: float | None = 0.05
    # Only arms seen this surely (elbow and wrist confidence): a hidden arm's keypoints are a
    # guess, and its flips with them (MediaPipe pickup_ground s0: left wrist 86 -> 103 mm).
    flip_seen_conf: float = 0.5


@dataclass
class ObjectState:
    """Object poses being refined: world position (T,3) and world rotation vector (T,3)."""

    pos: torch.Tensor
    rotvec: torch.Tensor

    def rotation(self) -> torch.Tensor:
        return rotvec_to_matrix(self.rotvec)

    def at(self, index: torch.Tensor, pinned: torch.Tensor, pos0: torch.Tensor,
           rotvec0: torch.Tensor) -> "ObjectState":
        """The poses of frames `index` (T,) for every frame (untouched runs share one pose), the
        `pinned` frames (T,) at given poses (pos0, rotvec0: (3,) or per frame (T,3))."""
        return ObjectState(torch.where(pinned[:, None], pos0, self.pos[index]),
                           torch.where(pinned[:, None], rotvec0, self.rotvec[index]))


def still_runs(held: np.ndarray) -> np.ndarray:
    """(T,) for each frame, the frame whose object pose it takes: the first of its run of untouched
    frames, or itself while a hand holds the object. An untouched object does not move, so it gets
    one pose per run: a stillness cost would let pulls on the held frames (contact, smoothness) drag
    it a little per frame, decimetres in all."""
    index = np.arange(len(held))
    for start, end in runs(~np.asarray(held, bool)):
        index[start:end] = start
    return index


@dataclass
class SceneTerms:
    """What the environment and the object contribute, fixed during the refinement."""

    camera: PinholeCamera
    env_depth: np.ndarray                    # (H,W) metres along the optical axis; inf where empty
    support: Callable[[np.ndarray], np.ndarray]
    hull: np.ndarray                         # (V,3) object hull vertices in its body frame
    mesh: trimesh.Trimesh | None             # the object's surface in its body frame
    pos0: np.ndarray                         # the scene's object pose (first frame)
    rotvec0: np.ndarray


def project(points: torch.Tensor, camera: PinholeCamera) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (...,2) and depth (...) of world points."""
    R = torch.as_tensor(camera.T_world_cam[:3, :3])
    t = torch.as_tensor(camera.T_world_cam[:3, 3])
    K = torch.as_tensor(camera.K)
    cam = (points - t) @ R
    z = cam[..., 2]
    uv = cam[..., :2] / z.clamp(min=1e-3)[..., None] @ K[:2, :2].T + K[:2, 2]
    return uv, z


def at_distances(points: torch.Tensor, camera: PinholeCamera, distances: torch.Tensor) -> torch.Tensor:
    """The points (...,3) moved along their camera rays to the given distances (...) from the
    camera: the result does not change as a point moves along its ray, so no term moves it there."""
    origin = torch.as_tensor(camera.position)
    offset = points - origin
    return origin + offset / offset.norm(dim=-1, keepdim=True) * distances[..., None]


def sample_depth(depth: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel lookup of a depth image at pixels uv (...,2); outside the image: inf."""
    H, W = depth.shape
    u, v = uv[..., 0].detach().round().long(), uv[..., 1].detach().round().long()
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    d = depth[v.clamp(0, H - 1), u.clamp(0, W - 1)]
    return torch.where(inside, d, torch.full_like(d, float("inf")))


def depth_term(object_pos: torch.Tensor, object_rot: torch.Tensor, scene: SceneTerms, env_depth: torch.Tensor,
               options: RefineOptions, resting: torch.Tensor | None = None) -> torch.Tensor:
    """The object centre in front of the environment; its hull above its support, and on it in the
    `resting` frames (T,) (let go: nothing holds it up)."""
    uv, z = project(object_pos, scene.camera)
    cost = (torch.nan_to_num(torch.relu(z - sample_depth(env_depth, uv)), posinf=0.0) ** 2).sum()
    hull = object_pos[:, None] + torch.einsum("tij,vj->tvi", object_rot, torch.as_tensor(scene.hull))
    floor = torch.as_tensor(under_object(scene.support, hull.detach().numpy()))
    sunk = (torch.relu(floor - hull[..., 2]) ** 2).sum()
    if resting is not None:
        sunk = sunk + (((hull[..., 2] - floor).amin(-1) ** 2) * resting).sum()
        up = torch.as_tensor(rotvec_to_matrix(torch.as_tensor(scene.rotvec0)).numpy()[2])  # its up, body frame
        tilt = ((torch.einsum("tij,j->ti", object_rot, up) - torch.tensor([0.0, 0.0, 1.0])) ** 2).sum(-1)
        cost = cost + (tilt * resting).sum() * options.depth_m ** 2 / options.first_rad ** 2
    return cost / options.depth_m ** 2 + sunk / options.support_m ** 2


def grasp_targets(palms: np.ndarray, obj_pos: np.ndarray, obj_rot: np.ndarray, contacts: ContactLabels,
                  mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Per hand and frame, the palm centre's place on the object (object frame) held over each
    contact interval: the surface point nearest the mean of its initial estimate, a hand's half
    thickness out (the palm touches the surface). Returns (T,2,3) targets and (T,2) mask."""
    T = len(palms)
    local = np.einsum("tji,tkj->tki", obj_rot, palms - obj_pos[:, None])
    targets, mask = np.zeros((T, 2, 3)), np.zeros((T, 2), bool)
    for k, name in enumerate(("left_hand", "right_hand")):
        for start, end in runs(contacts.of(name)):
            targets[start:end, k] = _on_surface(mesh, local[start:end, k].mean(axis=0))
            mask[start:end, k] = True
    return targets, mask


def _on_surface(mesh: trimesh.Trimesh, point: np.ndarray) -> np.ndarray:
    """The palm centre touching the surface where `point` (object frame) is nearest to it."""
    closest, _, face = trimesh.proximity.closest_point(mesh, point[None])
    out = point - closest[0]
    normal = out / np.linalg.norm(out) if np.linalg.norm(out) > 1e-6 else mesh.face_normals[face[0]]
    if mesh.is_watertight and mesh.contains(point[None])[0]:
        normal = mesh.face_normals[face[0]]
    return closest[0] + HAND_HALF_THICKNESS_M * normal


def palms_on_object(palms: torch.Tensor, state: ObjectState, rot: torch.Tensor) -> torch.Tensor:
    """(T,2,3) palm centres in the object's frame."""
    return torch.einsum("tji,tkj->tki", rot, palms - state.pos[:, None])


def contact_term(local: torch.Tensor, state: ObjectState, targets: torch.Tensor, mask: torch.Tensor,
                 scene: SceneTerms, options: RefineOptions, grasp_m: float) -> torch.Tensor:
    """Rigid grasp (palms in the object's frame at their targets, within about grasp_m) and the
    first frame at the scene's pose (an untouched object is still by construction: `still_runs`)."""
    cost = (((local - targets) ** 2).sum(-1) * mask).sum() / grasp_m ** 2
    cost = cost + ((state.pos[0] - torch.as_tensor(scene.pos0)) ** 2).sum() / options.first_m ** 2
    cost = cost + ((state.rotvec[0] - torch.as_tensor(scene.rotvec0)) ** 2).sum() / options.first_rad ** 2
    return cost


def carry_term(pos: torch.Tensor, rot: torch.Tensor, start_pos: torch.Tensor, start_rot: torch.Tensor,
               held: torch.Tensor, options: RefineOptions) -> torch.Tensor:
    """The held frames' (`held` (T,), 0/1) object poses (T,3), (T,3,3) off their start's (the
    grip's), squared in carry_m and carry_rad (the Frobenius distance of two rotations is about
    sqrt(2) times their angle)."""
    cost = torch.zeros((), dtype=torch.float64)
    if options.carry_m is not None:
        cost = cost + (((pos - start_pos) ** 2).sum(-1) * held).sum() / options.carry_m ** 2
    if options.carry_rad is not None:
        cost = cost + (((rot - start_rot) ** 2).sum((-2, -1)) * held).sum() / (2 * options.carry_rad ** 2)
    return cost


def proj_frames(contacts: ContactLabels, T: int, stride: int) -> np.ndarray:
    """Frames whose image term counts: from just before the first touch on (the untouched object
    before it is pinned by its known first pose and the stillness term), every `stride`-th."""
    held = np.flatnonzero(contacts.held.any(axis=1)) if contacts.held.size else np.array([], int)
    start = max(0, int(held[0]) - stride) if len(held) else 0
    return np.arange(start, T, stride)


def hull_planes(mesh: trimesh.Trimesh) -> np.ndarray:
    """(F,4) outward unit normals and offsets of the object's convex hull faces: n.x <= d inside."""
    hull = mesh.convex_hull
    normals = np.asarray(hull.face_normals)
    offsets = (normals * np.asarray(hull.triangles_center)).sum(axis=1)
    return np.concatenate([normals, offsets[:, None]], axis=1)


def palm_clearance(local: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """(T,2) distance of each palm centre (object frame) outside the object's hull (negative
    inside; the largest face-plane distance, exact inside and on the faces' side regions of a
    convex body)."""
    return (local @ planes[:, :3].T - planes[:, 3]).amax(-1)


def regulariser(state: ObjectState, options: RefineOptions, clearance: torch.Tensor | None = None) -> torch.Tensor:
    """Object smoothness, and palms kept out of the object (penetration) in every frame."""
    acc = state.pos[2:] - 2 * state.pos[1:-1] + state.pos[:-2]
    ang = state.rotvec[2:] - 2 * state.rotvec[1:-1] + state.rotvec[:-2]
    cost = (acc ** 2).sum() / options.accel_m ** 2 + (ang ** 2).sum() / options.accel_rad ** 2
    if clearance is not None:
        cost = cost + (torch.relu(HAND_HALF_THICKNESS_M - clearance) ** 2).sum() / options.support_m ** 2
    return cost


@dataclass
class RefineResult:
    root: np.ndarray
    local: np.ndarray
    object_pos: np.ndarray | None
    object_rotvec: np.ndarray | None
    terms: dict[str, float]      # final value of each weighted term


def refine(human_terms: Callable[[torch.Tensor, torch.Tensor, slice], torch.Tensor], rig: TorchRig,
           obs: Observations, root: np.ndarray, local: np.ndarray, palm_offsets: np.ndarray,
           contacts: ContactLabels, options: RefineOptions, scene: SceneTerms,
           silhouette_energy: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
           object_pos: np.ndarray | None = None, object_rotvec: np.ndarray | None = None) -> RefineResult:
    """Refine human (and object, when given) together, the object alone first
    (`options.object_first`); returns the refined poses and term values."""
    w = options.weights
    T = obs.frames
    root_t = torch.tensor(root, requires_grad=True)
    local_t = torch.tensor(local, requires_grad=True)
    params = [root_t, local_t]
    state = None
    if object_pos is not None:
        state = ObjectState(torch.tensor(object_pos, requires_grad=True), torch.tensor(object_rotvec, requires_grad=True))
        params += [state.pos, state.rotvec]
        distance = torch.as_tensor(np.linalg.norm(object_pos - scene.camera.position, axis=-1))  # kept (`placed`)
    held = contacts.held.any(axis=1) if contacts.held.size else np.zeros(T, bool)
    # put down: untouched after a hold (the first run is pinned by the scene's pose)
    resting = torch.as_tensor(~held & (np.cumsum(held) > 0), dtype=torch.float64) if options.rest_on_support else None
    index = torch.as_tensor(still_runs(held))
    # Untouched from the first frame, the object is where the scene put it: its pose is given, not
    # estimated (a stiff prior lost 1 cm to the image at 320x180).
    at_start = (index == 0) & torch.as_tensor(~held)
    pinned = at_start
    first = (torch.as_tensor(scene.pos0), torch.as_tensor(scene.rotvec0))
    if options.pin_rest and object_pos is not None and resting is not None:
        # let go, it stays where the interaction set it down (`interaction.settle`), as it was turned then
        pinned = at_start | (resting > 0)
        first = tuple(torch.where(at_start[:, None], value, torch.as_tensor(given[index.numpy()]))
                      for value, given in zip(first, (object_pos, object_rotvec)))
    env_depth = torch.as_tensor(scene.env_depth, dtype=torch.float64)
    offsets = torch.as_tensor(palm_offsets)
    wrists = [rig.joint_bones[f"{side}_wrist"] for side in ("left", "right")]
    frames = torch.as_tensor(proj_frames(contacts, T, options.proj_stride))
    targets = mask = None
    planes = torch.as_tensor(hull_planes(scene.mesh)) if scene.mesh is not None else None
    if state is not None:
        grip = (torch.as_tensor(object_pos), rotvec_to_matrix(torch.as_tensor(object_rotvec)))  # the start's poses
        with torch.no_grad():
            if options.flip_margin_m is not None:  # at the object's start (the grip)
                _flip_arms(rig, root_t, local_t, contacts, obs, scene, object_pos, grip[1].numpy(), palm_offsets,
                           options)
            p0 = _palm_points(*rig.forward(root_t, local_t), wrists, offsets).numpy()
        tg, mk = grasp_targets(p0, object_pos, grip[1].numpy(), contacts, scene.mesh)
        targets, mask = torch.as_tensor(tg), torch.as_tensor(mk, dtype=torch.float64)
        held_frames = torch.as_tensor(held, dtype=torch.float64)  # `carry_term`

    def placed() -> ObjectState:
        """The object's poses being refined, every frame (`ObjectState.at`), at its start's
        distances from the camera unless `object_along_ray`."""
        pos = state.pos if options.object_along_ray else at_distances(state.pos, scene.camera, distance)
        return ObjectState(pos, state.rotvec).at(index, pinned, *first)

    with torch.no_grad():
        held_pose = rig.forward(root_t, local_t)  # the human while the object moves alone
        fitted = rig.joints(held_pose[0], KEYPOINTS)[:, BODY_KEYPOINTS]

    def parts(human: bool = True) -> dict[str, torch.Tensor]:
        """The weighted terms; human=False: those that change with the object, the human held."""
        out = {"kp": human_terms(root_t, local_t, slice(None))} if human else {}
        pos, deltas = rig.forward(root_t, local_t) if human else held_pose
        obj = placed() if state is not None else None
        if obj is not None:
            rot = obj.rotation()
            out["depth"] = depth_term(obj.pos, rot, scene, env_depth, options, resting)
            if silhouette_energy is not None:
                out["proj"] = silhouette_energy(frames, obj.pos[frames], obj.rotvec[frames]).sum() \
                    * options.proj_stride / options.proj_scale
            local = palms_on_object(_palm_points(pos, deltas, wrists, offsets), obj, rot)
            grasp_m = options.grasp_m if human else options.object_grasp_m
            out["cont"] = contact_term(local, obj, targets, mask, scene, options, grasp_m) \
                + carry_term(obj.pos, rot, *grip, held_frames, options)
            out["reg"] = regulariser(obj, options, palm_clearance(local, planes))
            if human and options.keep_m is not None:
                out["reg"] = out["reg"] + keep_term(rig.joints(pos, KEYPOINTS), fitted, options)
        return out

    def objective(human: bool = True) -> torch.Tensor:
        return sum(getattr(w, name) * value for name, value in parts(human).items() if getattr(w, name) > 0)

    with torch.no_grad():
        before = float(objective())
    if state is not None and options.object_first:
        minimise([state.pos, state.rotvec], lambda: objective(human=False), options.iterations)
        if options.flip_margin_m is not None:  # again, at the object the image placed
            with torch.no_grad():
                obj = placed()
                _flip_arms(rig, root_t, local_t, contacts, obs, scene, obj.pos.numpy(), obj.rotation().numpy(),
                           palm_offsets, options)
                p0 = _palm_points(*rig.forward(root_t, local_t), wrists, offsets).numpy()
        if options.regrasp:
            with torch.no_grad():
                obj = placed()
                targets.copy_(torch.as_tensor(grasp_targets(p0, obj.pos.numpy(), obj.rotation().numpy(), contacts,
                                                            scene.mesh)[0]))
    with torch.no_grad():
        joint_before = float(objective())
        start = [p.detach().clone() for p in params]
    minimise(params, objective, options.iterations)
    with torch.no_grad():
        after = float(objective())
        if not np.isfinite(after) or after > joint_before:  # a diverged line search: keep its start
            for param, value in zip(params, start):
                param.copy_(value)
        values = {name: float(getattr(w, name) * v) for name, v in parts().items()}
        values["total_before"], values["total_after"] = before, float(objective())
        final = placed() if state is not None else None
    return RefineResult(root_t.detach().numpy(), local_t.detach().numpy(),
                        final.pos.numpy() if final else None, final.rotvec.numpy() if final else None, values)


#: Indices into KEYPOINTS of those `keep_term` bounds: the body's, elbows and wrists left free.
BODY_KEYPOINTS = [k for k, name in enumerate(KEYPOINTS) if not name.endswith(("elbow", "wrist"))]


def keep_term(joints: torch.Tensor, fitted: torch.Tensor, options: RefineOptions) -> torch.Tensor:
    """Body keypoints of joints (T,K,3) (`KEYPOINTS`) moved further than keep_m from the fit's
    `fitted` (T,B,3) (`BODY_KEYPOINTS`), squared in keep_scale_m."""
    moved = torch.sqrt(((joints[:, BODY_KEYPOINTS] - fitted) ** 2).sum(-1) + 1e-12)  # finite gradient where unmoved
    return (torch.relu(moved - options.keep_m) ** 2).sum() / options.keep_scale_m ** 2


def _flip_arms(rig: TorchRig, root: torch.Tensor, local: torch.Tensor, contacts: ContactLabels, obs: Observations,
               scene: SceneTerms, obj_pos: np.ndarray, obj_rot: np.ndarray, palm_offsets: np.ndarray,
               options: RefineOptions) -> None:
    """Turn the seen holding arms of `local` (in place) onto the depth flips nearest the object."""
    hands = np.stack([contacts.of("left_hand"), contacts.of("right_hand")], axis=1) & seen_arms(obs, options.flip_seen_conf)
    flipped, _ = settle_arm_flips(rig, root.numpy(), local.numpy(), scene.camera.T_world_cam[:3, 3], hands, scene.mesh,
                                  obj_pos, obj_rot, np.linalg.norm(palm_offsets, axis=-1), options.flip_margin_m)
    local.copy_(torch.as_tensor(flipped))


def _palm_points(pos: torch.Tensor, deltas: torch.Tensor, wrists: list[int], offsets: torch.Tensor) -> torch.Tensor:
    """(T,2,3) palm centres of posed bones (the torch twin of grail.recon.hoi.palms)."""
    return torch.stack([pos[:, b] + deltas[:, b] @ offsets[k] for k, b in enumerate(wrists)], 1)
