"""Fit the character's pose sequence to 2D keypoints with the camera and the scene known.

The character's shape is fixed (its bone lengths are metric), so the image size of its torso
gives depth; the scene's supports keep its ankles from sinking; its known placement at the
first frame (`first_root`, the scene's T_world_root) fixes where the clip starts. The fit:

1. initialises each frame's root from the torso's image length and the ray through the hips
   (shifted onto the known first placement), and its heading from the best of 24 turned rest
   poses (then unwrapped, smoothed and turned onto the known first heading);
2. tracks the body through short windows of frames, each started where the last one ended (and
   turned along or onto the heading track, and from a stance on both feet squatting on them; the
   best start kept), so that poses far from rest (squats, reaching down) and turns start in their
   own basin;
3. optimises root positions and the turns of the articulated bones over all frames at once,
   three times: quadratic, then robust, then with the feet planted where the fit itself found
   them slow and low. The objective (HumanTerms) is a MAP one: reprojection at the keypoint
   noise, joint accelerations at a human scale, priors on what one view leaves open (sideways
   lean, hip and spine roll, arms beside or in front of the body, the pelvis over its feet and,
   once they are planted from the fit, swaying over the one it stands on),
   joint limits (knees, shoulders, the spine's range of motion), ankles on their supports:
   never below, the lower one on it, and a planted one on it and still (a planted foot's pixel
   and its support fix its depth; a still one carries that depth on through the frames), and
   of a knee, ankle or elbow pair the one the estimator sees clearly less beyond the other
   (which way a side view faces, and which way round a body turns through one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from grail.recon.arm_search import searched_arms
from grail.recon.optim import geman_mcclure, minimise
from grail.recon.body import TorchRig, hinge_axes, rest_height, rotvec_to_matrix
from grail.recon.fit_start import initial_roots, planted_feet, project_points, speed
from grail.recon.keypoints import depth_order_bones, depth_order_evidence, keypoint_offsets, landmark_points
from grail.recon.observations import Observations
from grail.recon.physical import SceneSolids, balance_excess, centre_of_mass, segment_weights
from grail.scene.camera import PinholeCamera

#: Bones that carry the visible articulation, under a weak prior.
ARTICULATED = ("root", "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R",
               "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R")
#: The spine chain: equal priors share a bend of the back among its bones, as a back bends.
SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")
#: The bones the fit turns. The others stay as initialised: the pelvis halves (the pelvis is
#: rigid), the twist bones (a turn about a limb's axis that its first bone can make as well),
#: the feet and hands (no keypoint lies beyond them), and the neck's upper bones and the head (the
#: neck's first bone turns the head's keypoint as they would). Left free, such redundant turns
#: soak up noise, and their slow convergence under L-BFGS holds back everything else.
FREE = ARTICULATED + SPINE + ("clavicle.L", "clavicle.R", "neck01")

KNEE_MAX_RAD = 2.5   # deepest knee flexion (pickup_ground's squat reaches 2.36)
LIMB_BACK = 0.5      # sin of the furthest an upper arm swings behind the chest (30 deg)
#: Range of motion of the whole thoracolumbar spine, summed over the SPINE bones, as (low, high)
#: rad about the character's forward (side bend), left (flexion +, extension -) and up (twist)
#: axes: the AAOS normal values (flexion 80 deg, extension 25, lateral bending 35, rotation 45).
#: One view cannot tell a back bent toward the camera from one bent away, nor a torso twisted
#: half round from one facing the hips' way: anatomy can.
SPINE_RANGE_RAD = ((-0.61, 0.61), (-0.44, 1.40), (-0.79, 0.79))


@dataclass
class FitOptions:
    """Each term is a squared residual over its scale, so a residual of one scale costs one."""

    iterations: int = 300           # L-BFGS iterations over all frames at once (per stage)
    track_window: int = 20          # frames per window of the tracking that initialises the fit (0: none)
    track_iterations: int = 80      # L-BFGS iterations per window
    sigma_px: float = 3.0           # keypoint noise (a 1280x720 image): the reprojection's scale
    robust_px: float = 9.0          # Geman-McClure scale: larger residuals count less and less
    # Joint acceleration scale, m/frame^2. People move at about 0.01 rms at 24 fps, but with heavy
    # tails (footfalls, grasps: 0.04 at the 99th percentile of the templates' ground truth); a
    # Gaussian at the rms scale rated a smooth wrong depth above the true motion (place_table s0:
    # 72 mm at 0.012, 30 mm at 0.03, oracle 3 px).
    accel_m: float = 0.03
    # ... for the knees and ankles only: they swing and strike the ground, while the trunk and arms
    # move at a third of their rate (the templates' ground truth: knees and ankles 13 mm/frame^2
    # rms, 60 at the 99th percentile; pelvis and hips 4 and 10; shoulders, neck, head, elbows 5
    # and 15-19; wrists 7.5 and 22). One scale for all left keypoint noise in the trunk and arms:
    # oracle 3 px, fit alone, seed 1 of 9 templates: 19.2 -> 18.2 mm (started at the truth,
    # 16.6 -> 15.2); MediaPipe, seeds 0 and 2: 44.2 -> 44.0. At 0.015 and 0.0135 place_table lost more.
    upper_accel_m: float = 0.018
    track_accel_m: float = 0.02     # both while tracking windows initialise the fit (0.03 let stairs run off)
    track_heading_rad: float = 0.5  # while tracking, the root faces near the heading track (best turned rest pose)
    # While tracking, a window that starts on both feet is also started squatting on them (see
    # _track). Fit alone, MediaPipe: place_table s1 101 -> 52 mm, pickup_ground s0 100 -> 50, s3 83 -> 53.
    track_squat: bool = True
    rotation_articulated: float = 3.0   # rad: hips, knees, ankles, shoulders, elbows, root
    rotation_spine: float = 0.3     # rad per spine bone, bending forward
    sideways_rad: float = 0.1       # spine bones bending sideways or twisting, the pelvis rolling
    neck_rad: float = 0.3           # the neck bending forward or back (sideways and twisting: sideways_rad)
    hip_rad: float = 0.15           # thighs turning out/in or about their axis (walking, sitting: < 0.2)
    balance_m: float = 0.04         # the pelvis over its feet, sideways (people keep their balance)
    # ... shifted this share of the way toward a foot it stands on alone: walkers move the pelvis
    # 2-4 cm over the stance foot at a 10-15 cm step width (gait literature); a side view sees that
    # only as depth. Oracle 3 px, 12 clips: 23.9 -> 22.1 mm; MediaPipe, 8 clips: 48.1 -> 46.3.
    sway: float = 0.35
    arm_side_m: float = 0.1         # elbows (wrists: wrist_side_m) out to the side of their shoulder ...
    # ... around this far outward: relaxed arms hang clear of the torso (the templates' ground
    # truth: elbows and wrists 4.5 cm outward of their shoulder). Centred at 0 the prior drew the
    # arms in, and a side view then pushed the body away from the camera. Fit alone, 27 clips
    # (seeds 0-2): MediaPipe 42.2 -> 41.1 mm (0.045 alike); oracle 3 px, seed 0: 21.5 -> 21.2 (0.045: 22.1).
    arm_out_m: float = 0.025
    # In the last stage (the basin found) the elbows and hinges are looser: hands work in front of
    # the body and knees turn a little off their hinge; at the tighter scales a fit started at the
    # truth, with exact keypoints, moved 15 mm from it (wrists 30 mm), at the looser ones 11 (wrists 15).
    final_arm_side_m: float = 0.3
    # The wrists keep this scale through every stage: loosened too, a forearm that crosses the
    # camera's rays, where a pixel hardly tells its depth, drifted along them on noisy keypoints
    # (oracle 3 px, fit alone: the near wrist ~3 cm toward the camera through whole walks). Whole
    # stage, 45 clips each: MediaPipe object 2.87 -> 2.65 cm, MPJPE 38.3 -> 38.5 mm (pelvis-relative
    # 29.7 -> 28.5; walks 36.0 -> 37.2, object clips 41.1 -> 40.1); oracle MPJPE 20.4 -> 20.1 mm
    # (wrists 41.3 / 29.5 -> 33.6 / 28.7), object 1.98 -> 2.05 cm. The elbows kept at it too:
    # oracle 19.8 mm, object 2.0, but MediaPipe MPJPE 38.6, object 2.86, a filter failure.
    wrist_side_m: float = 0.1
    final_hinge_rad: float = 0.5
    rotation_other: float = 0.15    # rad: clavicles (and the bones the fit does not turn)
    ground_m: float = 0.01          # ankles on their support
    ground_robust_m: float = 0.05   # beyond about this height above it, a support counts less and less (0: quadratic)
    skate_m: float = 0.003          # a planted ankle's travel per frame
    limit_rad: float = 0.05         # knee range and shoulder extension (soft joint limits)
    hinge_rad: float = 0.2          # knees and elbows turn about their hinge axis only
    planted_speed: float = 0.15     # m/s: an ankle slower than this is taken to stand on its support
    # The first root track's distance from the camera within this of the planted feet's. A seated
    # child's pelvis is 0.3-0.4 m beyond its feet: at 0.3 MediaPipe's sit_chair s2 went 59 -> 118 mm.
    feet_reach_m: float = 0.5
    replant: bool = True            # a third stage with the feet planted from the fit's own 3D ankles
    anchor_m: float = 0.02          # the first frame's root over its known floor point (first_root)
    anchor_rad: float = 0.05        # and facing its known way
    solid_radius_m: float = 0.03    # joints (ankles aside: they stand on supports) this far out of the scene's solids
    solid_m: float = 0.01           # scale of a joint's penetration into them
    reach_m: float = 0.35           # the centre of mass at most this far beyond the feet, horizontally
    fall_m: float = 0.02            # scale of the excess (a body leaning further would fall)
    heading_candidates: int = 24
    # A joint the estimator reports clearly less visible than its mirror image lies beyond it
    # (keypoints.depth_order_evidence): the order costs (distance of the wrong way / order_m)^2.
    # One view cannot tell a body turning one way from one turning the other way round through a
    # side view (the hips in line with the camera), nor which way a side view faces, without it.
    order_m: float = 0.02
    # Before the last stage, this share of the back's forward bend moves into the pelvis, every
    # other bone keeping its world orientation (`pelvis_pitched`). A bend at the hips and one in
    # the lower back put the hips, the shoulders and the neck in the same places, and L-BFGS does
    # not cross from the one to the other: bending, pushing or placing, the fit's back took the
    # whole bend (oracle pickup_ground s0: spine 1.36 rad, pelvis 0.10; the truth 0.75 and 0.74)
    # at a prior cost the truth's tipped pelvis does not pay. Only the bend beyond
    # pelvis_from_rad is shared (a back bends first, the pelvis joins a deeper bend): shared from
    # no bend on, the walks' MediaPipe fits lost 0.4-0.9 mm. 45 clips: MPJPE oracle 20.4 -> 20.1
    # mm, MediaPipe 38.5 -> 38.3; object oracle 2.58 -> 2.48 cm. Before every stage: alike. 0: none.
    pelvis_share: float = 0.5
    pelvis_from_rad: float = 0.3
    # Before the last stage, each arm takes the cheapest sequence of its four depth configurations
    # (`arm_search`): L-BFGS does not carry an arm across from one to another. 45 clips, whole
    # stage: oracle MPJPE 20.1 -> 19.6 mm (pickup_ground 20.6 -> 17.6; the walks 0.1-0.4 worse),
    # object 2.48 -> 2.00 cm; MediaPipe MPJPE 38.25 -> 38.27, object 2.93 -> 2.91.
    arm_search: bool = True
    # ... where a configuration is cheaper by more than this a frame: the fit's own arm is polished
    # and the others are not (an elbow and wrist within 2 cm of the fit's count as the fit's).
    # Before polishing, elbow and wrist errors summed, oracle 3 px, 14 object clips and 12 others:
    # fitted 98.8 and 52.4 mm; no margin 77.9 and 57.5; 0.05: 78.7 and 54.4; 0.1: 83.1 and 53.0
    # (push_box s3 and place_table s4 lose their gains). A cost per change instead: no better.
    arm_margin: float = 0.05


@dataclass
class HumanFit:
    root_pos: np.ndarray     # (T,3)
    local: np.ndarray        # (T,J,3) rest-relative axis-angle
    bone_pos: np.ndarray     # (T,J,3)
    deltas: np.ndarray       # (T,J,3,3)
    reprojection_px: float   # mean over seen keypoints
    planted: np.ndarray      # (T,2) weight that the left/right ankle stands on its support
    terms: "HumanTerms"      # the final objective, for refinements that add terms on top of it


class HumanTerms:
    """The fitting objective over any window of frames (see FitOptions for the scales); each term
    is a negative log-likelihood up to a constant, so the optimum is a MAP estimate."""

    def __init__(self, obs: Observations, camera: PinholeCamera, rig: TorchRig,
                 support_height: Callable[[np.ndarray], np.ndarray], options: FitOptions,
                 first_root: np.ndarray | None = None, solids: SceneSolids | None = None) -> None:
        self.rig, self.options, self.support_height, self.solids = rig, options, support_height, solids
        self.named = list(rig.joint_bones)  # the body's named joints: its centre of mass, and what stays out of the scene
        self.com_weights = torch.tensor(segment_weights(self.named))
        self.solid_joints = [name for name in self.named if not name.endswith("_ankle")]
        self.planted = torch.zeros((obs.frames, 2), dtype=torch.float64)
        self.kp = torch.tensor(obs.keypoints, dtype=torch.float64)
        self.kp_offsets = torch.tensor(keypoint_offsets(obs.estimator))
        self.order = torch.tensor(depth_order_evidence(obs))
        self.order_bones = depth_order_bones(rig)
        self.weight = torch.tensor(obs.keypoint_conf, dtype=torch.float64)
        self.K = torch.tensor(camera.K)
        self.R_wc, self.t_wc = torch.tensor(camera.T_world_cam[:3, :3]), torch.tensor(camera.T_world_cam[:3, 3])
        self.f = float(camera.K[0, 0])
        px = camera.height / 720 / self.f  # a 1280x720 pixel in normalised image units
        self.sigma2, self.robust_scale = (options.sigma_px * px) ** 2, options.robust_px * px
        self.prior = _priors(rig, options)
        self.hinge_bones, self.hinge_axes = hinge_axes(rig)
        self.rest_ankle = rest_height(rig, "left_ankle")
        self.robust = False
        self.floor: torch.Tensor | None = None
        self.chest = rig.names.index("spine01") if "spine01" in rig.names else 0
        # (outward sign along the chest's left axis, shoulder, elbow, wrist) of each arm
        self.arm_chains = [(outward, *(rig.joint_bones[f"{side}_{joint}"] for joint in ("shoulder", "elbow", "wrist")))
                           for side, outward in (("left", 1.0), ("right", -1.0))]
        self.arms = [(shoulder, elbow) for _, shoulder, elbow, _ in self.arm_chains]
        self.tracked = sorted(set(rig.joint_bones.values()))
        legs = {bone for name, bone in rig.joint_bones.items() if name.endswith(("_knee", "_ankle"))}
        self.tracked_legs = torch.tensor([bone in legs for bone in self.tracked])
        self.free = [rig.names.index(name) for name in FREE if name in rig.names]
        self.spine = [rig.names.index(name) for name in SPINE if name in rig.names]
        self.spine_low, self.spine_high = torch.tensor(SPINE_RANGE_RAD, dtype=torch.float64).T
        self.pelvis = rig.joint_bones["pelvis"]
        self.ankles = rig.joint_bones["left_ankle"], rig.joint_bones["right_ankle"]
        self.first: tuple[torch.Tensor, torch.Tensor] | None = None
        if first_root is not None:
            placement = torch.tensor(np.asarray(first_root, float))
            self.first = placement[:3, :3], placement[:2, 3]

    def _limits(self, pos: torch.Tensor, deltas: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """(T,) squared excess beyond the joint limits: knees bend one way only (flexion is a
        negative turn about the hinge axis, from -0.13 to -2.4 rad in every template's ground
        truth), the spine within its range of motion (SPINE_RANGE_RAD), and an upper arm points
        at most LIMB_BACK behind the chest (anatomical shoulder extension; it removes the
        forward/backward arm flip that a side view cannot tell)."""
        knee = (local[:, self.hinge_bones[:2]] * self.hinge_axes[:2]).sum(-1)
        excess = (torch.relu(knee) ** 2 + torch.relu(-knee - KNEE_MAX_RAD) ** 2).sum(-1)
        if self.spine:
            spine = local[:, self.spine].sum(1)  # small turns per bone: their sum is the chain's turn
            excess = excess + (torch.relu(self.spine_low - spine) ** 2 + torch.relu(spine - self.spine_high) ** 2).sum(-1)
        for shoulder, elbow in self.arms:
            arm = pos[:, elbow] - pos[:, shoulder]
            forward = (deltas[:, self.chest, :, 0] * arm).sum(-1) / arm.norm(dim=-1).clamp(min=1e-6)
            excess = excess + torch.relu(-forward - LIMB_BACK) ** 2
        return excess

    def _upright(self, pos: torch.Tensor, deltas: torch.Tensor, frames: slice) -> torch.Tensor:
        """(T,) the pelvis neither rolls sideways nor leaves the space over its feet sideways: it
        stands between them, shifted `sway` of the way toward a foot it stands on alone. A side
        view shows sideways lean and sway only by foreshortening, so without this the body tilts
        toward or away from the camera about its planted feet."""
        o = self.options
        left = deltas[:, 0, :, 1]  # the pelvis' left axis (the character faces +x at rest)
        feet = pos[:, list(self.ankles)]
        weight = self.planted[frames]
        stance = (weight[..., None] * feet).sum(1) / weight.sum(1, keepdim=True).clamp(min=1e-3)
        middle = feet.mean(1)
        alone = (weight[:, 0] - weight[:, 1]).abs()[:, None]  # 1 on one foot, 0 on both or none
        between = pos[:, self.pelvis] - middle - o.sway * alone * (stance - middle)
        return left[:, 2] ** 2 / o.sideways_rad ** 2 + ((between * left).sum(-1) / o.balance_m) ** 2

    def _arms(self, pos: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """(T,) elbows and wrists stay near the vertical plane `arm_out_m` outward of their
        shoulder: arms hang by the body and hands work in front of it (the rig's A-pose rest is no
        resting pose). A side view cannot tell a hand beside the body from one in front of it: this
        does. The elbows' scale is arm_side_m, the wrists' wrist_side_m."""
        left = deltas[:, self.chest, :, 1]
        o = self.options
        cost = pos.new_zeros(len(pos))
        for outward, shoulder, elbow, wrist in self.arm_chains:
            for joint, scale in ((elbow, o.arm_side_m), (wrist, o.wrist_side_m)):
                out = outward * ((pos[:, joint] - pos[:, shoulder]) * left).sum(-1)
                cost = cost + (out - o.arm_out_m) ** 2 / scale ** 2
        return cost

    def _anchor(self, root: torch.Tensor, deltas: torch.Tensor, frames: slice) -> torch.Tensor:
        """The known placement of the first frame (the scene's T_world_root): its root over the
        same floor point and facing the same way. It fixes the depth and the heading that a
        single view leaves weakly determined; smoothness and planted feet carry them on."""
        if self.first is None or frames.start not in (None, 0):
            return root.new_zeros(())
        rotation, xy = self.first
        o = self.options
        turn = ((deltas[0, 0, :2, 0] - rotation[:2, 0]) ** 2).sum() / o.anchor_rad ** 2
        return ((root[0, :2] - xy) ** 2).sum() / o.anchor_m ** 2 + turn

    def __call__(self, root: torch.Tensor, local: torch.Tensor, frames: slice,
                 before: torch.Tensor | None = None) -> torch.Tensor:
        """Objective of frames[frames] posed by (root, local); `before` (2,B,3): the tracked bone
        origins of the two preceding frames, held fixed (tracking)."""
        return sum(self.parts(root, local, frames, before).values())

    def parts(self, root: torch.Tensor, local: torch.Tensor, frames: slice,
              before: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The objective's terms by name (their sum is the objective), to weigh them against each other."""
        o = self.options
        pos, deltas = self.rig.forward(root, local)
        terms = {name: cost.sum() for name, cost in self._frame_parts(pos, deltas, local, frames).items()}
        track = pos[:, self.tracked]
        track = track if before is None else torch.cat([before, track], 0)
        acc = track[2:] - 2 * track[1:-1] + track[:-2]
        scale = torch.where(self.tracked_legs, o.accel_m, o.upper_accel_m)
        terms["smoothness"] = ((acc ** 2).sum(-1) / scale ** 2).sum()
        # A planted ankle stays where it stands: depth found in one frame carries over to the next ones.
        ankles = self.rig.joints(pos, ("left_ankle", "right_ankle"))
        planted = self.planted[frames]
        still = torch.minimum(planted[1:], planted[:-1])
        terms["skate"] = (still * ((ankles[1:] - ankles[:-1]) ** 2).sum(-1)).sum() / o.skate_m ** 2
        terms["anchor"] = self._anchor(root, deltas, frames)
        return terms

    def frame_costs(self, root: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """(T,) each frame's own share of the objective (every term but those between frames:
        smoothness, skate, the first frame's anchor), to compare poses frame by frame."""
        pos, deltas = self.rig.forward(root, local)
        return sum(self._frame_parts(pos, deltas, local, slice(None)).values())

    def _frame_parts(self, pos: torch.Tensor, deltas: torch.Tensor, local: torch.Tensor,
                     frames: slice) -> dict[str, torch.Tensor]:
        """The terms each frame pays on its own, (T,) each."""
        o = self.options
        uv = project_points(self.keypoints(pos, deltas), self.K, self.R_wc, self.t_wc)
        r2 = ((uv - self.kp[frames]) ** 2).sum(-1) / self.f ** 2
        # Quadratic first (it pulls from anywhere), then Geman-McClure (outliers stop mattering).
        scaled = (geman_mcclure(r2, self.robust_scale) if self.robust else r2) / self.sigma2
        reproj = (self.weight[frames] * scaled).sum(-1)
        pose = (self.prior * local ** 2).sum(-1).sum(-1) + self._upright(pos, deltas, frames) + self._arms(pos, deltas)
        hinge = local[:, self.hinge_bones]
        off = hinge - (hinge * self.hinge_axes).sum(-1, keepdim=True) * self.hinge_axes
        pose = pose + (off ** 2).sum(-1).sum(-1) / o.hinge_rad ** 2
        pose = pose + self._limits(pos, deltas, local) / o.limit_rad ** 2
        height = self.ankle_heights(pos, frames)
        lowest = -0.003 * torch.logsumexp(-height / 0.003, dim=1)  # soft minimum over the two feet
        planted = self.planted[frames]  # a foot that hardly moves stands on its support (feet contact)
        # Standing on a looked-up support is robust (Geman-McClure at ground_robust_m): a foot far
        # above it may stand on another one (the next stair, a curb), and a quadratic pull onto a
        # wrong lookup would drag the body along its viewing rays; never below one stays quadratic.
        on = lowest ** 2 + (planted * height ** 2).sum(-1)
        on = geman_mcclure(on, o.ground_robust_m)
        ground = ((torch.relu(-height) ** 2).sum(-1) + on) / o.ground_m ** 2
        return {"reprojection": reproj, "pose": pose, "ground": ground, "physical": self._physical(pos),
                "order": self._depth_order(pos, frames)}

    def _depth_order(self, pos: torch.Tensor, frames: slice) -> torch.Tensor:
        """(T,) how far each pair stands the wrong way round in depth, against the estimator's
        evidence on which of the two it sees the less (FitOptions.order_m)."""
        evidence = self.order[frames]
        left, right = self.order_bones
        gap = (pos[:, left] - self.t_wc).norm(dim=-1) - (pos[:, right] - self.t_wc).norm(dim=-1)  # + : left further
        wrong = torch.where(evidence > 0, torch.relu(gap), torch.relu(-gap))
        return (evidence.abs() * wrong ** 2).sum(-1) / self.options.order_m ** 2

    def _physical(self, pos: torch.Tensor) -> torch.Tensor:
        """(T,) what physics rules out (grail.recon.physical): joints inside the scene's solids,
        and a centre of mass beyond reach of the feet."""
        o = self.options
        joints = self.rig.joints(pos, self.named)
        com = centre_of_mass(joints, self.com_weights)
        ankles = self.rig.joints(pos, ("left_ankle", "right_ankle"))
        cost = (balance_excess(com, ankles[:, 0], ankles[:, 1], o.reach_m) / o.fall_m) ** 2
        if self.solids is not None:
            inside = torch.relu(o.solid_radius_m - self.solids.clearance(self.rig.joints(pos, self.solid_joints)))
            cost = cost + (inside ** 2).sum(-1) / o.solid_m ** 2
        return cost

    def keypoints(self, pos: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """(T,K,3) where the observed keypoints sit on the posed body."""
        return landmark_points(self.rig, pos, deltas, self.kp_offsets, self.t_wc)

    def ankle_heights(self, pos: torch.Tensor, frames: slice) -> torch.Tensor:
        """(T,2) height of each ankle above where it would stand on the support below it (the
        support as last looked up: see `look_down`)."""
        ankles = self.rig.joints(pos, ("left_ankle", "right_ankle"))
        floor = self.floor[frames] if self.floor is not None else self._support(ankles)
        return ankles[..., 2] - floor - self.rest_ankle

    def look_down(self, pos: torch.Tensor, frames: slice = slice(None)) -> None:
        """Fix the support height under each ankle of frames[frames] posed at `pos`. A support
        map is a step function of position (stairs, a curb, a chair): looked up during L-BFGS, it
        would change the objective under the line search at every edge that an ankle crosses."""
        if self.floor is None:
            self.floor = torch.zeros(self.planted.shape, dtype=torch.float64)
        self.floor[frames] = self._support(self.rig.joints(pos.detach(), ("left_ankle", "right_ankle")))

    def _support(self, ankles: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.support_height(ankles.detach().numpy().reshape(-1, 3)).reshape(-1, 2))


def planted_from_fit(ankles: np.ndarray, heights: np.ndarray, fps: float, speed_m_s: float,
                     height_m: float = 0.03, window: int = 9) -> np.ndarray:
    """(T,2) weight that each ankle stands on its support, from a first fit's 3D ankle tracks:
    slow and low. Unlike image speed it sees a foot that moves along the viewing ray, and it
    does not plant a foot that is lifted but still."""
    v = np.stack([speed(ankles[:, k], fps, window) for k in range(2)], 1)
    return np.exp(-(v / speed_m_s) ** 2 - (np.maximum(heights, 0.0) / height_m) ** 2)


def fit_human(obs: Observations, camera: PinholeCamera, rig: TorchRig, support_height: Callable[[np.ndarray], np.ndarray],
              options: FitOptions | None = None, progress: Callable[[int, int], None] | None = None,
              init_local: np.ndarray | None = None, first_root: np.ndarray | None = None,
              solids: SceneSolids | None = None) -> HumanFit:
    """Root positions and bone rotations of every frame (see the module docstring). `first_root`
    (4,4): the character's known placement at the first frame (the scene's T_world_root);
    `solids`: the static scene, which the body stays out of."""
    options = options or FitOptions()
    T = obs.frames
    terms = HumanTerms(obs, camera, rig, support_height, options, first_root, solids)
    root0, yaw0 = initial_roots(obs, camera, rig, support_height, options.heading_candidates, options.planted_speed,
                                options.feet_reach_m, first_root)
    terms.planted = torch.tensor(planted_feet(obs, camera, root0, options.planted_speed))
    if init_local is None:
        local_np = np.zeros((T, rig.bones, 3))
        local_np[:, 0, 2] = yaw0
    else:  # a known starting pose (a previous fit, or the ground truth in tests)
        local_np = init_local
    root = torch.tensor(root0, requires_grad=True)
    free = terms.free
    held = torch.tensor(local_np)
    turns = held[:, free].clone().requires_grad_(True)

    def posed() -> torch.Tensor:
        local = held.clone()
        local[:, free] = turns
        return local

    # The pelvis sways over a foot it stands on alone only once the feet are planted from the fit's
    # own 3D ankles: image speeds unplant a foot often enough for the shift to mislead (MediaPipe,
    # pickup_table s0: 47 mm without sway, 53 with it from the start, 46.5 with it last).
    early = replace(options, sway=0.0)
    if init_local is None and options.track_window > 0:
        terms.options = replace(early, accel_m=options.track_accel_m, upper_accel_m=options.track_accel_m)
        _track(terms, root, turns, posed, yaw0, options)
    terms.options = early
    stages = [False, True, True] if options.replant else [False, True]
    for stage, robust in enumerate(stages):
        with torch.no_grad():
            pos, _ = rig.forward(root, posed())
        terms.look_down(pos)
        if stage == 2:  # feet planted where the fit found them slow and low, not where the image says
            heights = terms.ankle_heights(pos, slice(None)).numpy()
            ankles = rig.joints(pos, ("left_ankle", "right_ankle")).numpy()
            terms.planted = torch.tensor(planted_from_fit(ankles, heights, obs.fps, options.planted_speed))
            terms.options = replace(terms.options, sway=options.sway)
        terms.robust = robust
        if stage == len(stages) - 1:  # the basin found: let the image place arms and knees
            terms.options = replace(terms.options, arm_side_m=options.final_arm_side_m,
                                    hinge_rad=options.final_hinge_rad)
            with torch.no_grad():
                moved = pelvis_pitched(rig, posed().numpy(), options.pelvis_share, options.pelvis_from_rad)
                if options.arm_search:
                    fixed = root.detach()
                    moved, _ = searched_arms(rig, fixed.numpy(), moved, camera.T_world_cam[:3, 3],
                                             lambda local: terms.frame_costs(fixed, torch.tensor(local)).numpy(),
                                             options.upper_accel_m, options.arm_margin)
                turns.copy_(torch.tensor(moved)[:, free])
        minimise([root, turns], lambda: terms(root, posed(), slice(None)), options.iterations)
        if progress:
            progress(stage + 1, len(stages))
    with torch.no_grad():
        local = posed()
        pos, deltas = rig.forward(root, local)
        uv = project_points(terms.keypoints(pos, deltas), terms.K, terms.R_wc, terms.t_wc)
        err = torch.linalg.norm(uv - terms.kp, dim=-1)[torch.tensor(obs.keypoint_conf) > 0]
    return HumanFit(root.detach().numpy(), local.detach().numpy(), pos.numpy(), deltas.numpy(),
                    float(err.mean()) if err.numel() else float("nan"), terms.planted.numpy(), terms)


def _track(terms: HumanTerms, root: torch.Tensor, turns: torch.Tensor, posed: Callable[[], torch.Tensor],
           headings: np.ndarray, options: FitOptions) -> None:
    """Initialise (root, turns) in place by fitting short windows of frames in order, each started
    from the pose that ended the one before, moved along the torso-size root track. Fitted all at
    once from rest, a body that bends far from rest (squatting, placing) falls into a wrong depth;
    followed from the known first frame, it stays in its basin. A window is fitted from up to four
    starts: as the last one ended, turned along the heading track, and turned onto it (someone
    turning round to sit turns faster than a window, and the track can lead or lag the turn); and
    where the last window ended standing on both feet, squatting on them (`_squat_start`):
    followed on from a standing pose, a child squatting down with the camera behind it was fitted
    leaning back 40 cm over nothing, at a lower objective than standing but a higher one than the
    squat. The lowest objective wins, with the root kept near the track's heading: a side view
    tells a turn from a lean only once fitted."""
    T, W = len(root), options.track_window
    guess = root.detach().clone()
    for start in range(0, T, W):
        frames = slice(start, min(start + W, T))
        with torch.no_grad():
            if start > 0:
                root[frames] = root[start - 1] + guess[frames] - guess[start - 1]
                turns[frames] = turns[start - 1]
        before = None
        if start >= 2:
            with torch.no_grad():
                back = slice(start - 2, start)
                before = terms.rig.forward(root[back], posed()[back])[0][:, terms.tracked]
        starts = [turns[frames].detach().clone()]
        if start > 0:  # turned along the heading track, and turned onto it
            previous = Rotation.from_rotvec(turns[start - 1, 0].detach().numpy())
            facing = previous.as_matrix()[:, 0]
            now = float(np.arctan2(facing[1], facing[0]))
            for origin in (headings[start - 1], now):
                change = headings[frames] - origin
                if float(np.abs(np.angle(np.exp(1j * change))).max()) > 0.2:
                    turned = starts[0].clone()
                    turned[:, 0] = torch.tensor((Rotation.from_euler("z", change[:, None]) * previous).as_rotvec())
                    starts.append(turned)
        roots = [root[frames].detach().clone()] * len(starts)
        if options.track_squat and start > 0 and float(terms.planted[start - 1].min()) > 0.5:  # on both feet
            r_sq, t_sq = _squat_start(terms, root[start - 1].detach(), posed()[start - 1].detach(), frames.stop - frames.start)
            starts.append(t_sq)
            roots.append(r_sq)
        best = None
        for r0, initial in zip(roots, starts):
            r, t, cost = _fit_window(terms, r0.clone(), initial, posed, frames, before,
                                     torch.tensor(headings[frames]), options)
            if best is None or cost < best[2]:
                best = r, t, cost
        with torch.no_grad():
            root[frames], turns[frames] = best[0], best[1]


#: A deep squat as turns about the left axis (rad): hips flexed 75 deg, knees 125 deg (a full
#: squat flexes the knee 120-160 deg), and the pelvis tipped 11 deg forward. Only a start: the
#: window's fit moves from it to what the image shows.
SQUAT_RAD = {"upperleg01.L": -1.3, "upperleg01.R": -1.3, "lowerleg01.L": 2.2, "lowerleg01.R": 2.2}
SQUAT_PITCH_RAD = 0.2


def pelvis_pitched(rig: TorchRig, local: np.ndarray, share: float, from_rad: float = 0.0) -> np.ndarray:
    """Local rotations (T,J,3) with `share` of the spine's forward bend (its bones' summed turns
    about the left axis) beyond `from_rad` moved into the pelvis: the root tips forward by it
    about its own left axis and the first turned bones below it turn back by as much, so that
    every bone but the pelvis (the root and its unturned halves) keeps its world orientation.
    The hips lie on the root's left axis, so the joints stay within millimetres of where they
    were; only the split of the bend between the hips and the back changes."""
    out = np.array(local, copy=True)
    spine = [rig.names.index(name) for name in SPINE if name in rig.names]
    bend = local[:, spine, 1].sum(axis=1) if spine else np.zeros(len(local))
    tip = share * np.sign(bend) * np.maximum(np.abs(bend) - from_rad, 0.0)
    P = Rotation.from_rotvec(np.outer(tip, [0.0, 1.0, 0.0]))
    out[:, 0] = (Rotation.from_rotvec(local[:, 0]) * P).as_rotvec()
    # A child of the root, or of an unturned bone below it, under the chain M of unturned bones
    # from the root: D = D_root M L, so it keeps D with L' = M^-1 P^-1 M L.
    stack = [(j, Rotation.identity(len(local))) for j, parent in enumerate(rig.parents) if parent == 0]
    while stack:
        j, M = stack.pop()
        if rig.names[j] in FREE:
            out[:, j] = (M.inv() * P.inv() * M * Rotation.from_rotvec(local[:, j])).as_rotvec()
            continue
        below = M * Rotation.from_rotvec(local[:, j])
        stack += [(k, below) for k, parent in enumerate(rig.parents) if parent == j]
    return out


def _squat_start(terms: HumanTerms, last_root: torch.Tensor, last_local: torch.Tensor,
                 frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A window start squatting on the feet that ended the last window: the last pose with the legs
    folded (SQUAT_RAD) and the pelvis tipped forward, its root moved so the ankles stay put. Returns
    the window's roots and turns of the free bones."""
    rig = terms.rig
    with torch.no_grad():
        turns = last_local[terms.free].clone()
        for name, angle in SQUAT_RAD.items():
            if name in rig.names:
                turns[terms.free.index(rig.names.index(name)), 1] = angle
        facing = Rotation.from_rotvec(last_local[0].numpy())
        heading = float(np.arctan2(facing.as_matrix()[1, 0], facing.as_matrix()[0, 0]))
        tipped = Rotation.from_euler("z", heading) * Rotation.from_euler("y", SQUAT_PITCH_RAD)
        turns[terms.free.index(0)] = torch.tensor(tipped.as_rotvec())
        local = last_local.clone()
        local[terms.free] = turns
        before, _ = rig.forward(last_root[None], last_local[None])
        after, _ = rig.forward(last_root[None], local[None])
        feet = list(terms.ankles)
        root = last_root + (before[0, feet] - after[0, feet]).mean(0)
        return root.expand(frames, 3).clone(), turns.expand(frames, *turns.shape).clone()


def _fit_window(terms: HumanTerms, r: torch.Tensor, t: torch.Tensor, posed: Callable[[], torch.Tensor], frames: slice,
                before: torch.Tensor | None, headings: torch.Tensor,
                options: FitOptions) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One tracking window fitted from (r, t) with the root facing near the heading track: the
    fitted root and turns and their objective."""
    def pose_of(turns: torch.Tensor) -> torch.Tensor:
        local = posed()[frames].detach().clone()
        local[:, terms.free] = turns
        return local

    with torch.no_grad():
        terms.look_down(terms.rig.forward(r, pose_of(t))[0], frames)
    r.requires_grad_(True)
    t.requires_grad_(True)

    def objective() -> torch.Tensor:
        local = pose_of(t)
        facing = rotvec_to_matrix(local[:, 0])[:, :2, 0]  # the root's forward axis, horizontal part
        along = facing[:, 0] * torch.cos(headings) + facing[:, 1] * torch.sin(headings)
        away = 2 * (facing.norm(dim=-1) - along).sum() / options.track_heading_rad ** 2  # ~ angle^2 / sigma^2
        return terms(r, local, frames, before) + away

    minimise([r, t], objective, options.track_iterations)
    with torch.no_grad():
        return r.detach(), t.detach(), float(objective())


def _priors(rig: TorchRig, options: FitOptions) -> torch.Tensor:
    """(J,3) inverse variances of each bone's rest-relative turn about the character's forward,
    left and up axes (turns of a bone are in its parent's rest frame, which faces +x like the
    character). The root's turn is free: its heading and pitch are what the fit is for."""
    o = options
    prior = torch.full((rig.bones, 3), o.rotation_other ** -2, dtype=torch.float64)
    sigmas = {name: (o.rotation_articulated,) * 3 for name in ARTICULATED}
    sigmas.update({name: (o.sideways_rad, o.rotation_spine, o.sideways_rad) for name in SPINE})
    sigmas.update({name: (o.hip_rad, o.rotation_articulated, o.hip_rad) for name in ("upperleg01.L", "upperleg01.R")})
    sigmas["neck01"] = (o.sideways_rad, o.neck_rad, o.sideways_rad)
    for name, sigma in sigmas.items():
        if name in rig.names:
            prior[rig.names.index(name)] = torch.tensor(sigma, dtype=torch.float64) ** -2
    prior[0] = 0.0
    return prior
