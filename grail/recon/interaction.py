"""The object's trajectory from the interaction, not from the image alone.

A region tracker holds an untouched object to millimetres but loses it in the hand: skin and a
brown box look alike, and the hand covers it. The interaction says more than the pixels there:

- before the first touch the object stands where the scene put it (its first-frame pose is known);
- from the grasp on it is carried along by the grip (one wrist, or the point between two) and
  turned with the torso's heading, level (`torso_heading`): the fitted hands' tilt and twist are
  their error, not the object's, and so is the palm, 9 cm out from the wrist on that twist;
- after the release it rests on the support, where the frames after the release, summed, show it
  best along the camera's ray from where the grip left it (`settle`): the grip's image is right,
  and it is as far off in depth as the fitted hands.

The hands say roughly when the grasp starts: the first frame a fitted palm comes within `onset_m`
of the resting object's surface, or no later than the image sees the object leave its place
(`departure_frame`: a hidden wrist can keep a fitted palm decimetres off). The image says
exactly: among the frames around it, the one whose trajectory (at rest until it, carried from it)
best explains the object colour. The release frame is chosen by the image too: among all
candidates (including 'never'), the one whose whole trajectory best explains the frames' object
colour, summed over every frame from the grasp on with the hands' pixels left out. With the
colour posterior pf, a silhouette S costs sum over S of log((1 - pf) / pf) plus a constant per
frame, so candidates compare exactly.

The refinement's image term also leaves out the body where it is in front of the object
(`body_mask`): a box carried behind a child's back is hidden, not elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from grail.recon.contacts import runs, surface_distance
from grail.recon.object_track import ObjectModel
from grail.recon.supports import under_object
from grail.rotations import matrices_from_quats
from grail.scene.camera import PinholeCamera
from grail.video.body import rot_z


@dataclass
class InteractionOptions:
    onset_m: float = 0.06          # a palm this close to the resting object's surface touches it ...
    settle_frames: int = 8         # ... and takes it where it comes closest within this many frames
    onset_image_m: float = 0.03    # no 3D touch: a palm's image this close to the object's, held min_hold_frames
    onset_far_m: float = 0.15      # neither: the closest approach, if within this
    release_gap_m: float = 0.12    # an object is let go only this close to a support, and set down on it
                                   # (the fitted hand's height is good to centimetres, not millimetres)
    second_hand_m: float = 0.12    # the other palm this close as the grasp settles: a two-handed grip
    min_hold_frames: int = 4
    release_travel_m: float = 0.1  # and only once it has been carried this far from where it lay: a hand
                                   # fitted off the object makes 'put straight back' look likely
    forearm_radius_m: float = 0.04  # pixels of the forearms and hands the object likelihood ignores
    hand_radius_m: float = 0.05
    image_grasp: bool = True       # the grasp frame chosen by the image among grasp_before..grasp_after
    grasp_before: int = 4          # frames around the hands' estimate,
    grasp_reach_back: int = 24     # (earlier, while the earliest is best, as far as this)
    grasp_after: int = 16
    grasp_window: int = 24         # compared over the frames up to this many past the last candidate
    departure: bool = True         # a grasp the hands find after the object has left its place is sought before that
    departed_share: float = 0.5    # the place looks this much less like the object than at frame 0 ...
    departed_frames: int = 8       # ... for this many frames (frames it is hidden in aside): it has gone
    grasp_lead: int = 12           # a hand settles on the object this many frames before it leaves its place
    reach_m: float = 0.3           # and some palm is this close to it then (image or surface): not a passer-by
    body_occlusion: bool = True    # the refinement's image term also leaves out the body in front of the object
    # Let go, the object is put where the frames after the release best show it, on the support within
    # this distance of where the grip set it down (0: where the grip set it down). A grip is as far
    # off in depth as the fitted hands; on a support, depth shows as height in the image (oracle
    # place_table s3: set down 25 cm off, 2.5 cm from the search).
    settle_radius_m: float = 0.25
    # ... along the camera's ray, and this far across it: the grip's image is right, its depth is
    # not. Set-downs found: 0-9 cm across; a floor place 22 cm across a box held above it matched
    # it better than the carried grip (oracle pickup_ground s2 and s4, MediaPipe s2), a false release.
    settle_across_m: float = 0.1
    settle_step_m: float = 0.01    # then a fifth of it within two steps
    settle_yaw_rad: float = 0.8    # and turned about the vertical this far from the carried heading,
    settle_yaw_step_rad: float = 0.05  # in these steps


@dataclass
class GripTrack:
    pos: np.ndarray          # (T,3)
    rot: np.ndarray          # (T,3,3)
    held: np.ndarray         # (T,) bool
    hands: tuple[bool, bool]  # which hands hold it (left, right)
    grasp: int | None        # first held frame
    release: int | None      # first frame after the hold (None: held to the end, or never taken)


def grip_origins(points: np.ndarray, hands: tuple[bool, bool]) -> np.ndarray:
    """(T,3) the point the grip carries, from each hand's (T,2,3): the holding hand's, or the
    middle of both."""
    return points[:, [k for k in range(2) if hands[k]]].mean(axis=1)


def surface_distances(model: ObjectModel, palms: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """(T,2) palm-centre distances to the object's surface at one fixed pose."""
    return surface_distance(model.mesh, (palms.reshape(-1, 3) - pos) @ rot).reshape(palms.shape[:2])


def image_distances(camera: PinholeCamera, model: ObjectModel, pos0: np.ndarray, quat0: np.ndarray,
                    palms: np.ndarray) -> np.ndarray:
    """(T,2) how far each palm's image lies from the resting object's image, in metres at the
    object's depth. A fitted hand's image is right to a few pixels while its depth can be off by
    decimetres, so a hand that reaches the object shows here first."""
    from grail.recon.object_track import silhouette

    mask = silhouette(camera, model, pos0, quat0)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    uv, _ = camera.project(palms.reshape(-1, 3))
    u = np.clip(np.round(uv[:, 0]).astype(int), 0, camera.width - 1)
    v = np.clip(np.round(uv[:, 1]).astype(int), 0, camera.height - 1)
    depth = float(camera.world_to_camera(pos0[None])[0, 2])
    return (outside[v, u] * depth / camera.K[0, 0]).reshape(palms.shape[:2])


def hand_mask(camera: PinholeCamera, elbows: np.ndarray, wrists: np.ndarray, palm_tips: np.ndarray,
              options: InteractionOptions) -> np.ndarray:
    """(T,H,W) bool: the forearms and hands of a posed sequence, drawn as thick projected segments."""
    T = len(wrists)
    out = np.zeros((T, camera.height, camera.width), np.uint8)
    for t in range(T):
        for a, b, r in ((elbows[t], wrists[t], options.forearm_radius_m), (wrists[t], palm_tips[t], options.hand_radius_m)):
            for k in range(2):
                uv, z = camera.project(np.stack([a[k], b[k]]))
                if np.any(z <= 0.05):
                    continue
                width = max(1, int(round(2 * camera.K[0, 0] * r / z.mean())))
                p, q = (tuple(int(round(c)) for c in np.clip(x, -1e4, 1e4)) for x in uv)
                cv2.line(out[t], p, q, 1, width)
    return out.view(bool)  # the 0/1 bytes as they are: no second (T,H,W) copy


# Limbs drawn by `body_mask`, with their radius as a share of the shoulder width.
BODY_SEGMENTS = (("left_hip", "left_knee", 0.3), ("left_knee", "left_ankle", 0.25),
                 ("right_hip", "right_knee", 0.3), ("right_knee", "right_ankle", 0.25),
                 ("left_shoulder", "left_elbow", 0.25), ("right_shoulder", "right_elbow", 0.25),
                 ("neck", "head", 0.4))
TORSO = ("left_shoulder", "right_shoulder", "right_hip", "left_hip")


def body_mask(camera: PinholeCamera, joints: dict[str, np.ndarray], object_depth: np.ndarray) -> np.ndarray:
    """(T,H,W) bool: the torso, head and limbs of a posed sequence (joints: name -> (T,3)) where
    they are nearer the camera than the object (object_depth (T,), metres along the optical axis).
    A body in front of the object hides it: its pixels are no evidence of where the object is,
    and a carried box behind a child's back would otherwise be pushed out to where it shows."""
    T = len(object_depth)
    out = np.zeros((T, camera.height, camera.width), np.uint8)
    width = np.linalg.norm(joints["left_shoulder"] - joints["right_shoulder"], axis=1)
    for t in range(T):
        def pixels(names):
            uv, z = camera.project(np.stack([joints[n][t] for n in names]))
            return np.clip(np.round(uv), -1e4, 1e4).astype(np.int32), z
        uv, z = pixels(TORSO)
        if np.all(z > 0.05) and z.mean() < object_depth[t]:
            cv2.fillConvexPoly(out[t], cv2.convexHull(uv), 1)
        for a, b, share in BODY_SEGMENTS:
            uv, z = pixels((a, b))
            if np.all(z > 0.05) and z.mean() < object_depth[t]:
                thick = max(1, int(round(2 * camera.K[0, 0] * share * width[t] / z.mean())))
                cv2.line(out[t], tuple(map(int, uv[0])), tuple(map(int, uv[1])), 1, thick)
    return out.view(bool)


class ColourEvidence:
    """Per-frame log-odds log((1 - pf) / pf) of the object colour, hands left out (0 there).
    Each frame's map is computed once and kept as float16 (a full 1280x720 frame is 1.8 MB, not
    7.4 as float64: an 11 s clip's maps were 2 GB); sums over them are taken in float64."""

    def __init__(self, posterior, frames: int, ignore: np.ndarray | None) -> None:
        self._posterior, self._ignore, self._cache = posterior, ignore, {}
        self.frames = frames

    @property
    def shape(self) -> tuple[int, int]:
        """(H,W) of one frame's map."""
        return self.log_odds(0).shape

    def log_odds(self, t: int) -> np.ndarray:
        if t not in self._cache:
            pf = self._posterior(t)
            lo = np.log((1.0 - pf) / pf)
            if self._ignore is not None:
                lo[self._ignore[t]] = 0.0
            self._cache[t] = lo.astype(np.float16)
        return self._cache[t]

    def _silhouette(self, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray, rot: np.ndarray
                    ) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """The pose's silhouette (convex outline of its hull) as a box of the frame and a mask in it."""
        uv, z = camera.project(hull @ rot.T + pos)
        if np.any(z <= 1e-3):
            return None
        x0, y0 = np.floor(uv.min(axis=0)).astype(int).clip(0, [camera.width - 1, camera.height - 1])
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int).clip(0, [camera.width - 1, camera.height - 1]) + 1
        if x1 - x0 < 1 or y1 - y0 < 1:
            return None
        poly = cv2.convexHull(np.round((uv - [x0, y0]) * 16).astype(np.int32))
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, poly, 1, lineType=cv2.LINE_8, shift=4)
        return (slice(y0, y1), slice(x0, x1)), mask.astype(bool)

    def cost(self, t: int, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> float:
        """Sum of frame t's log-odds over the pose's silhouette."""
        return self.map_cost(self.log_odds(t), camera, hull, pos, rot)

    def map_cost(self, log_odds: np.ndarray, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray,
                 rot: np.ndarray) -> float:
        """Sum of a log-odds map (one frame's, or several frames' summed) over the pose's silhouette."""
        sil = self._silhouette(camera, hull, pos, rot)
        return 0.0 if sil is None else float(log_odds[sil[0]][sil[1]].sum(dtype=np.float64))

    def agreement(self, t: int, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray, rot: np.ndarray,
                  hidden: np.ndarray | None = None) -> tuple[float, float]:
        """(share of the silhouette's visible pixels that look like the object, share of the
        silhouette visible): the mask-tracking measure under occlusion by the hands (and `hidden`
        (H,W), more pixels to leave out: the quality filter passes the body in front of the object)."""
        sil = self._silhouette(camera, hull, pos, rot)
        if sil is None:
            return 0.0, 0.0
        box, mask = sil
        visible = mask if self._ignore is None else mask & ~self._ignore[t][box]
        if hidden is not None:
            visible = visible & ~hidden[box]
        if not visible.any():
            return float("nan"), 0.0
        return float((self.log_odds(t)[box][visible] < 0).mean()), float(visible.sum() / mask.sum())


def grip_track(model: ObjectModel, hull: np.ndarray, pos0: np.ndarray, quat0: np.ndarray, palms: np.ndarray,
               wrists: np.ndarray, heading: np.ndarray, camera: PinholeCamera, evidence: ColourEvidence,
               support: Callable[[np.ndarray], np.ndarray], options: InteractionOptions,
               departed: int | None = None) -> GripTrack:
    """The object's trajectory: at rest, then with the grip, then at rest where it was let go.
    `palms` (T,2,3) say when and with which hands it is taken; `wrists` (T,2,3) carry it: a
    keypoint, where the palm hangs on the hand's unobserved twist (20 object clips, the grip's
    start against the truth: oracle 5.8 -> 4.3 cm, MediaPipe 5.3 -> 4.7). `heading` (T,): the
    torso's, `torso_heading`; `departed`: the frame the object was seen to leave its place,
    `departure_frame`."""
    T = len(palms)
    rot0 = matrices_from_quats(quat0)
    pos = np.repeat(pos0[None], T, 0)
    rot = np.repeat(rot0[None], T, 0)
    surface = surface_distances(model, palms, pos0, rot0)
    image = image_distances(camera, model, pos0, quat0, palms)
    g = grasp_frame(surface, image, options)
    g = _before_departure(g, departed, surface, image, options)
    if g is None or g >= T - options.min_hold_frames:
        return GripTrack(pos, rot, np.zeros(T, bool), (False, False), None, None)
    dist = np.minimum(surface, image)[g:g + options.settle_frames].min(axis=0)  # each palm's closest, settling on
    first = int(np.argmin(dist))
    hands = tuple(bool(k == first or dist[k] < options.second_hand_m) for k in range(2))
    origin = grip_origins(wrists, hands)

    def carry(g: int) -> tuple[np.ndarray, np.ndarray]:
        """(T,3), (T,3,3) the object taken at frame g: carried along by the grip's origin, turned
        with the torso about the vertical. The wrists' and the palms' line's turns are the fitted
        hands' (a palm 20 cm off in depth turns a 30 cm grip by 34 degrees; nothing observes a
        wrist's twist). Benchmark, 20 object clips: rotation 22.8 -> 6.8 degrees (MediaPipe),
        20.6 -> 3.8 (oracle); position 5.65 -> 4.79 cm, 4.95 -> 4.42."""
        turn = rot_z(heading - heading[g])
        return origin + np.einsum("tij,j->ti", turn, pos0 - origin[g]), turn @ rot0

    if options.image_grasp:
        g = _best_grasp(g, T, pos0, rot0, carry, hull, camera, evidence, options)
    carried_pos, carried_rot = carry(g)
    gap = support_gaps(carried_pos, carried_rot, hull, support)
    set_down = carried_pos - gap[:, None] * np.array([0.0, 0.0, 1.0])
    travelled = np.zeros(T)  # the farthest the carried object has been from where it lay, since the grasp
    travelled[g:] = np.maximum.accumulate(np.linalg.norm(carried_pos[g:] - pos0, axis=1))
    resting = (np.abs(gap) < options.release_gap_m) & (travelled >= options.release_travel_m)
    release, place = _best_release(g, carried_pos, carried_rot, set_down, hull, camera, evidence, resting, support,
                                   options)
    end = T if release is None else release
    pos[g:end], rot[g:end] = carried_pos[g:end], carried_rot[g:end]
    if release is not None:
        pos[release:], rot[release:] = place, carried_rot[release]
    held = np.zeros(T, bool)
    held[g:end] = True
    return GripTrack(pos, rot, held, hands, g, release)


def grasp_frame(surface: np.ndarray, image: np.ndarray, options: InteractionOptions) -> int | None:
    """The grasp, from each palm's distance (T,2) to the resting object: its surface in 3D, and its
    image (metres at the object's depth). A palm that reaches the object slows onto it: the frame
    it comes closest within `settle_frames` of first coming within onset_m. A fitted hand can be
    decimetres off in depth while its image is right to a few pixels: failing a 3D touch, the first
    frame from which a palm's image stays on the object's for min_hold_frames (a hand swinging
    past in front of it covers it for less); failing that, the closest approach within onset_far_m."""
    closest = surface.min(axis=1)
    touch = np.flatnonzero(closest < options.onset_m)
    if len(touch):
        enter = int(touch[0])
        return enter + int(np.argmin(closest[enter:enter + options.settle_frames]))
    for start, end in runs((image < options.onset_image_m).any(axis=1)):
        if end - start >= options.min_hold_frames:
            return start
    nearest = np.minimum(surface, image).min(axis=1)  # the closest approach, if close at all
    return int(np.argmin(nearest)) if nearest.min() < options.onset_far_m else None


def departure_frame(evidence: ColourEvidence, camera: PinholeCamera, hull: np.ndarray, pos0: np.ndarray,
                    rot0: np.ndarray, hidden: np.ndarray | None, options: InteractionOptions) -> int | None:
    """The first frame from which the object's resting place stops looking like the object: its
    agreement below `departed_share` of frame 0's for `departed_frames`, frames it is hidden in
    aside (by the hands, or by `hidden` (T,H,W): the body in front of it, a child bending over a
    box on the floor)."""
    base = max(evidence.agreement(0, camera, hull, pos0, rot0)[0], 1e-6)
    agree = np.array([evidence.agreement(t, camera, hull, pos0, rot0, None if hidden is None else hidden[t])
                      for t in range(evidence.frames)])
    seen = agree[:, 1] >= 0.5
    low = seen & (agree[:, 0] < options.departed_share * base)
    for start, end in runs(low | ~seen):
        if end - start >= options.departed_frames and low[start:end].sum() >= options.departed_frames // 2:
            return start + int(np.argmax(low[start:end]))
    return None


def _before_departure(g: int | None, departed: int | None, surface: np.ndarray, image: np.ndarray,
                      options: InteractionOptions) -> int | None:
    """The hands' grasp g, or where the object had left its place before it, `grasp_lead` frames
    before that if a palm was within `reach_m` then. A wrist MediaPipe hides behind the object and
    puts on the other arm keeps its fitted palm decimetres off; the hands' estimate then falls back
    on a late closest approach (MediaPipe place_table s0: frame 131; the object left its place at 75)."""
    if departed is None or (g is not None and g <= departed):
        return g
    lead = max(0, departed - options.grasp_lead)
    near = np.minimum(surface, image)[lead:departed + 1].min()
    return lead if near < options.reach_m else g


def _best_grasp(g0: int, T: int, pos0: np.ndarray, rot0: np.ndarray,
                carry: Callable[[int], tuple[np.ndarray, np.ndarray]], hull: np.ndarray, camera: PinholeCamera,
                evidence: ColourEvidence, options: InteractionOptions) -> int:
    """The grasp frame near the hands' estimate g0 whose trajectory (at rest until it, carried from
    it) best explains the object colour over the frames around it. A hand settles on the object
    for a few frames before it lifts: taken at the first touch, the object rides along with the
    last of the reach (oracle pickup_ground s2: taken 10 frames early, 15 cm off all the carry).
    Where the earliest candidate is best, and better than the next, the search goes on earlier,
    grasp_before frames (at least one) at a time, as far as grasp_reach_back before g0: a fitted
    palm decimetres off in depth touches the object late (oracle pickup_ground s4: the hands'
    grasp at 137, the truth's at 113; the earliest candidate, 133, was chosen, the can lifted
    10 cm by then). 20 object clips, oracle: 2.66 -> 2.58 cm (pickup_ground s2 4.29 -> 2.86, s4
    2.23 -> 1.98; no other run changed; s4's MPJPE 18.3 -> 21.3 mm, its arms chosen from the
    earlier grasp).
    Searched from grasp_reach_back before g0 always, s4 went to 4.73: a step at a time stops at
    the first minimum behind the window, nearer the hands' estimate."""
    floor = max(0, g0 - max(options.grasp_reach_back, options.grasp_before))
    lo = max(floor, g0 - options.grasp_before)
    hi = min(T - options.min_hold_frames - 1, g0 + options.grasp_after)
    end = min(T, hi + options.grasp_window)
    if hi <= lo:
        return g0
    at_rest = np.cumsum([0.0] + [evidence.cost(t, camera, hull, pos0, rot0) for t in range(floor, end)])

    def cost(g: int) -> float:
        """Frames floor..end-1 at rest until g, carried from it."""
        pos, rot = carry(g)
        return at_rest[g - floor] + sum(evidence.cost(t, camera, hull, pos[t], rot[t]) for t in range(g, end))

    costs = {g: cost(g) for g in range(lo, hi + 1)}
    while lo > floor and costs[lo] < costs[lo + 1] and lo == min(costs, key=costs.get):  # best at the edge
        earlier = max(floor, lo - max(1, options.grasp_before))
        costs.update({g: cost(g) for g in range(earlier, lo)})
        lo = earlier
    return min(sorted(costs), key=costs.get)


def torso_heading(joints: dict[str, np.ndarray]) -> np.ndarray:
    """(T,) the torso's heading about the vertical (radians): the direction from its right to its
    left side (shoulders and hips), turned a quarter forward."""
    left = joints["left_shoulder"] - joints["right_shoulder"] + joints["left_hip"] - joints["right_hip"]
    return np.unwrap(np.arctan2(left[:, 1], left[:, 0]) - np.pi / 2)


def support_gaps(pos: np.ndarray, rot: np.ndarray, hull: np.ndarray, support: Callable[[np.ndarray], np.ndarray]
                 ) -> np.ndarray:
    """(T,) height of the object's lowest hull point above the support under it (negative: in it;
    `under_object`: a box carried by a hand fitted low, half through the table top, is in it)."""
    world = np.einsum("tij,vj->tvi", rot, hull) + pos[:, None]
    return (world[..., 2] - under_object(support, world)).min(axis=1)


def places_around(centre: np.ndarray, direction: np.ndarray, along: float, across: float, step: float) -> np.ndarray:
    """(N,2) the points of a `step` grid within the ellipse about `centre` (2,) whose half-axes are
    `along` the horizontal `direction` (2,) and `across` it, nearest first (ties in grid order)."""
    u = direction / np.linalg.norm(direction) if np.linalg.norm(direction) > 1e-9 else np.array([1.0, 0.0])
    n = int(round(max(along, across) / step))
    offsets = np.arange(-n, n + 1) * step
    xy = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)
    a, b = xy @ u, xy @ np.array([-u[1], u[0]])
    inside = (a / along) ** 2 + (b / across) ** 2 <= 1 + 1e-9
    xy = xy[inside]
    return centre + xy[np.argsort(np.linalg.norm(xy, axis=1), kind="stable")]


def settle(log_odds: np.ndarray, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray, rot: np.ndarray,
           support: Callable[[np.ndarray], np.ndarray], evidence: ColourEvidence, options: InteractionOptions
           ) -> np.ndarray:
    """The resting position, on the support, within `settle_radius_m` of `pos` along the camera's
    ray and `settle_across_m` across it (horizontally), whose silhouette, turned within
    `settle_yaw_rad` of `rot` about the vertical, best explains `log_odds` (the frames after the
    release, summed). A search, coarse to fine: the sum is flat wherever the silhouette misses the
    object, so no gradient finds it from afar. The turn is searched for the place's sake only (a
    box turned 0.3 rad shifts the best place 1 cm) and not returned: a cylinder's or a mug's turn
    is a guess here, and the turn it was carried in at the release did better (oracle
    place_table: 6.0 degrees refined from it, 12.0 with the searched turn kept); it is kept now
    (`RefineOptions.pin_rest`)."""
    if options.settle_radius_m < options.settle_step_m:
        return pos

    def best(xy: np.ndarray, rots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cheapest of the candidates (N,2), (N,3,3), set down on the support; ties go to the
        first (the nearest: an object hidden throughout stays where it was set down)."""
        cand = np.concatenate([xy, np.full((len(xy), 1), pos[2])], axis=1)
        cand[:, 2] -= support_gaps(cand, rots, hull, support)
        costs = [evidence.map_cost(log_odds, camera, hull, c, r) for c, r in zip(cand, rots)]
        k = int(np.argmin(costs))
        return cand[k], rots[k]

    xy = places_around(pos[:2], pos[:2] - camera.position[:2], options.settle_radius_m, options.settle_across_m,
                       options.settle_step_m)
    place, turn = best(xy, np.repeat(rot[None], len(xy), 0))
    n = int(round(options.settle_yaw_rad / options.settle_yaw_step_rad))
    steps = np.arange(-n, n + 1)
    yaws = steps[np.argsort(np.abs(steps), kind="stable")] * options.settle_yaw_step_rad  # smallest turn first
    place, turn = best(np.repeat(place[None, :2], len(yaws), 0), rot_z(yaws) @ turn)
    # then both together, finely: one at a time, a place a centimetre off holds a turn a few degrees off
    fine = places_around(place[:2], np.array([1.0, 0.0]), 2 * options.settle_step_m, 2 * options.settle_step_m,
                         options.settle_step_m / 5)
    turns = rot_z(yaws[:7]) @ turn  # the found turn and three steps either side
    return best(np.tile(fine, (len(turns), 1)), np.repeat(turns, len(fine), 0))[0]


def _best_release(g: int, pos: np.ndarray, rot: np.ndarray, set_down: np.ndarray, hull: np.ndarray,
                  camera: PinholeCamera, evidence: ColourEvidence, resting: np.ndarray,
                  support: Callable[[np.ndarray], np.ndarray], options: InteractionOptions
                  ) -> tuple[int | None, np.ndarray | None]:
    """The release frame (None: never) whose trajectory costs least over frames g..T-1, carried
    until it and then at rest, and where it rests. Only frames where the carried object is near a
    support, having been moved, are candidates; each run of them has one resting place, where the
    frames from the run's start on best show it (`settle`, from the carried set-down mid-run).
    The carried set-down itself is as far off in depth as the fitted hands: judged there, 'never
    let go' won (MediaPipe place_table s1, the grip carried by the wrists: 33 cm off after it)."""
    T = len(pos)
    carried = np.array([evidence.cost(t, camera, hull, pos[t], rot[t]) for t in range(g, T)])
    carried_until = np.concatenate([[0.0], np.cumsum(carried)])  # [k]: frames g..g+k-1 carried
    costs, places = {}, {}
    first = g + options.min_hold_frames
    later, summed_from = np.zeros(evidence.shape), T  # frames summed_from..T-1, each added once, last run first
    for start, end in reversed([(start + first, end + first) for start, end in runs(resting[first:])]):
        for t in range(start, summed_from):
            later += evidence.log_odds(t)
        summed_from = start
        mid = (start + end - 1) // 2
        place = settle(later, camera, hull, set_down[mid], rot[mid], support, evidence, options)
        at_rest = np.array([evidence.cost(t, camera, hull, place, rot[mid]) for t in range(start, T)])
        rest_from = np.cumsum(at_rest[::-1])[::-1]  # [k]: frames start+k..T-1 at rest there
        for r in range(start, end):
            costs[r], places[r] = float(carried_until[r - g] + rest_from[r - start]), place
    best = min(sorted(costs), key=costs.get, default=None)  # ties go to the earlier release
    if best is None or costs[best] >= carried_until[-1]:
        return None, None
    return best, places[best]
