"""The object's trajectory from the interaction, not from the image alone.

A region tracker holds an untouched object to millimetres but loses it in the hand: skin and a
brown box look alike, and the hand covers it. The interaction says more than the pixels there:

- before the first touch the object stands where the scene put it (its first-frame pose is known);
- from the grasp on it moves rigidly with the grip: one palm's frame, or for two hands a frame
  through both palms with the chest's up direction;
- after the release it rests where the grip left it.

The grasp starts at the first frame a fitted palm comes within `onset_m` of the resting object's
surface. The release frame is chosen by the image: among all candidates (including 'never'), the
one whose whole trajectory best explains the frames' object colour, summed over every frame from
the grasp on with the hands' pixels left out. With the colour posterior pf, a silhouette S costs
sum over S of log((1 - pf) / pf) plus a constant per frame, so candidates compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from grail.recon.contacts import surface_distance
from grail.recon.object_track import ObjectModel
from grail.rotations import matrices_from_quats
from grail.scene.camera import PinholeCamera


@dataclass
class InteractionOptions:
    onset_m: float = 0.06          # a palm this close to the resting object's surface ...
    onset_speed: float = 0.3       # ... and this slow (m/s) takes it: a hand still reaching has not
    onset_far_m: float = 0.15      # no palm that close: the closest slow approach within this takes it
    release_gap_m: float = 0.04    # an object is let go only this close above a support (or it would fall)
    second_hand_m: float = 0.12    # the other palm this close at the grasp: a two-handed grip
    min_hold_frames: int = 4
    forearm_radius_m: float = 0.04  # pixels of the forearms and hands the object likelihood ignores
    hand_radius_m: float = 0.05


@dataclass
class GripTrack:
    pos: np.ndarray          # (T,3)
    rot: np.ndarray          # (T,3,3)
    held: np.ndarray         # (T,) bool
    hands: tuple[bool, bool]  # which hands hold it (left, right)
    grasp: int | None        # first held frame
    release: int | None      # first frame after the hold (None: held to the end, or never taken)


def grip_frames(palms: np.ndarray, wrist_rot: np.ndarray, chest_up: np.ndarray, hands: tuple[bool, bool]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(T,3) origins and (T,3,3) rotations of the grip: both palms (x from right to left palm, z the
    chest's up made orthogonal), or one palm with its wrist's rotation."""
    if hands[0] and hands[1]:
        origin = palms.mean(axis=1)
        x = palms[:, 0] - palms[:, 1]
        x /= np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-9)
        z = chest_up - (chest_up * x).sum(1, keepdims=True) * x
        z /= np.linalg.norm(z, axis=1, keepdims=True).clip(min=1e-9)
        return origin, np.stack([x, np.cross(z, x), z], axis=2)
    k = 0 if hands[0] else 1
    return palms[:, k], wrist_rot[:, k]


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
    return out.astype(bool)


class ColourEvidence:
    """Per-frame log-odds log((1 - pf) / pf) of the object colour, hands left out (0 there)."""

    def __init__(self, posterior, frames: int, ignore: np.ndarray | None) -> None:
        self._posterior, self._ignore, self._cache = posterior, ignore, {}
        self.frames = frames

    def log_odds(self, t: int) -> np.ndarray:
        if t not in self._cache:
            pf = self._posterior(t)
            lo = np.log((1.0 - pf) / pf)
            if self._ignore is not None:
                lo[self._ignore[t]] = 0.0
            self._cache[t] = lo
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
        """Sum of the log-odds over the pose's silhouette."""
        sil = self._silhouette(camera, hull, pos, rot)
        return 0.0 if sil is None else float(self.log_odds(t)[sil[0]][sil[1]].sum())

    def agreement(self, t: int, camera: PinholeCamera, hull: np.ndarray, pos: np.ndarray, rot: np.ndarray
                  ) -> tuple[float, float]:
        """(share of the silhouette's visible pixels that look like the object, share of the
        silhouette visible): the mask-tracking measure under occlusion by the hands."""
        sil = self._silhouette(camera, hull, pos, rot)
        if sil is None:
            return 0.0, 0.0
        box, mask = sil
        visible = mask if self._ignore is None else mask & ~self._ignore[t][box]
        if not visible.any():
            return float("nan"), 0.0
        return float((self.log_odds(t)[box][visible] < 0).mean()), float(visible.sum() / mask.sum())


def grip_track(model: ObjectModel, hull: np.ndarray, pos0: np.ndarray, quat0: np.ndarray, palms: np.ndarray,
               wrist_rot: np.ndarray, chest_up: np.ndarray, camera: PinholeCamera, evidence: ColourEvidence,
               support: Callable[[np.ndarray], np.ndarray], fps: float, options: InteractionOptions) -> GripTrack:
    """The object's trajectory: at rest, then with the grip, then at rest where it was let go."""
    T = len(palms)
    rot0 = matrices_from_quats(quat0)
    pos = np.repeat(pos0[None], T, 0)
    rot = np.repeat(rot0[None], T, 0)
    dist = np.minimum(surface_distances(model, palms, pos0, rot0), image_distances(camera, model, pos0, quat0, palms))
    speed = np.linalg.norm(np.gradient(palms, axis=0), axis=-1) * fps
    g = grasp_frame(dist, speed < options.onset_speed, options)
    if g is None or g >= T - options.min_hold_frames:
        return GripTrack(pos, rot, np.zeros(T, bool), (False, False), None, None)
    first = int(np.argmin(dist[g]))
    hands = tuple(bool(k == first or dist[g, k] < options.second_hand_m) for k in range(2))
    origin, frame = grip_frames(palms, wrist_rot, chest_up, hands)
    rel_rot = frame[g].T @ rot0
    rel_pos = frame[g].T @ (pos0 - origin[g])
    carried_pos = origin + np.einsum("tij,j->ti", frame, rel_pos)
    carried_rot = frame @ rel_rot
    resting = _on_support(carried_pos, carried_rot, hull, support, options.release_gap_m)
    release = _best_release(g, carried_pos, carried_rot, hull, camera, evidence, resting, options)
    end = T if release is None else release
    pos[g:end], rot[g:end] = carried_pos[g:end], carried_rot[g:end]
    if release is not None:
        pos[release:], rot[release:] = carried_pos[release], carried_rot[release]
    held = np.zeros(T, bool)
    held[g:end] = True
    return GripTrack(pos, rot, held, hands, g, release)


def grasp_frame(dist: np.ndarray, slow: np.ndarray, options: InteractionOptions) -> int | None:
    """The first frame a slow palm is within onset_m of the resting object; failing that (a fitted
    hand can be several centimetres off), the closest slow approach within onset_far_m."""
    near = np.flatnonzero(((dist < options.onset_m) & slow).any(axis=1))
    if len(near):
        return int(near[0])
    closest = np.where(slow, dist, np.inf).min(axis=1)
    return int(np.argmin(closest)) if closest.min() < options.onset_far_m else None


def _on_support(pos: np.ndarray, rot: np.ndarray, hull: np.ndarray, support: Callable[[np.ndarray], np.ndarray],
                gap_m: float) -> np.ndarray:
    """(T,) whether the object's lowest point is within gap_m of the support under it."""
    world = np.einsum("tij,vj->tvi", rot, hull) + pos[:, None]
    gap = (world[..., 2] - support(world.reshape(-1, 3)).reshape(world.shape[:2])).min(axis=1)
    return np.abs(gap) < gap_m


def _best_release(g: int, pos: np.ndarray, rot: np.ndarray, hull: np.ndarray, camera: PinholeCamera,
                  evidence: ColourEvidence, resting: np.ndarray, options: InteractionOptions) -> int | None:
    """The release frame (None: never) whose trajectory costs least over frames g..T-1; only
    frames where the carried object rests on a support are candidates."""
    T = len(pos)
    carried = np.array([evidence.cost(t, camera, hull, pos[t], rot[t]) for t in range(g, T)])
    best, best_cost = None, float(carried.sum())
    for r in range(g + options.min_hold_frames, T):
        if not resting[r]:
            continue
        left_there = sum(evidence.cost(t, camera, hull, pos[r], rot[r]) for t in range(r, T))
        cost = float(carried[: r - g].sum()) + left_there
        if cost < best_cost:
            best, best_cost = r, cost
    return best
