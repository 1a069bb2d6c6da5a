"""Contact labels estimated from a reconstructed motion (proximity + relative velocity), never
written by hand: which hand touches the object, which foot stands on its support, and whether the
pelvis rests on a seat.

- A hand touches the object when its palm is within `hand_m` of the object's surface and either
  moves with the object (relative speed below `hand_speed`) or the object moves (something must
  be moving it, and the near hand is the only candidate).
- A foot is planted when its ankle is within `foot_m` of its rest height above the support and
  slower than `foot_speed`.
- The pelvis sits when it is within `seat_m` of the support under it and lower than
  `seat_ratio` of its standing height above the feet.
Runs shorter than `min_frames` are dropped and gaps as short are closed, so a label does not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import trimesh

from grail.video.gt import CONTACT_NAMES

HAND_HALF_THICKNESS_M = 0.016  # palm centre (mean of the hand skin vertices) to the palm skin: 8-21 mm, mean 16, while held in 8 procedural clips


@dataclass
class ContactOptions:
    hand_m: float = 0.05
    hand_speed: float = 0.25      # m/s, palm relative to the object point under it
    object_moving: float = 0.08   # m/s, object speed that needs a hand
    foot_m: float = 0.03
    foot_speed: float = 0.25      # m/s
    seat_m: float = 0.18
    seat_ratio: float = 0.75
    min_frames: int = 3


@dataclass
class ContactLabels:
    names: list[str]              # CONTACT_NAMES
    contact: np.ndarray           # (T,C) bool
    contact_object: np.ndarray    # (T,C) int, the object a hand touches (-1: none)
    held: np.ndarray              # (T,O) bool: some hand touches the object

    def of(self, name: str) -> np.ndarray:
        return self.contact[:, self.names.index(name)]


def speed(x: np.ndarray, fps: float) -> np.ndarray:
    """(T,) speed of a (T,3) track, central differences."""
    if len(x) < 2:
        return np.zeros(len(x))
    return np.linalg.norm(np.gradient(x, axis=0), axis=-1) * fps


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) frame ranges, end exclusive, where `flags` is True."""
    edges = np.diff(np.r_[0, np.asarray(flags, int), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def clean_runs(flags: np.ndarray, min_frames: int) -> np.ndarray:
    """Close False gaps and drop True runs shorter than min_frames (gaps first: a grasp seen with a
    one-frame hole is one grasp)."""
    out = flags.astype(bool).copy()
    for value in (False, True):
        start = 0
        for t in range(1, len(out) + 1):
            if t == len(out) or out[t] != out[start]:
                if out[start] == value and t - start < min_frames and (value or (start > 0 and t < len(out))):
                    out[start:t] = not value
                start = t
    return out


def palm_surface_gap(mesh: trimesh.Trimesh, palms: np.ndarray, obj_pos: np.ndarray, obj_rot: np.ndarray) -> np.ndarray:
    """(T,2) gap between each palm's surface and the object's (m; negative: the hand is inside):
    the palm centre's signed distance less the hand's half thickness."""
    T = len(palms)
    local = np.einsum("tji,tkj->tki", obj_rot, palms - obj_pos[:, None]).reshape(-1, 3)
    inside = trimesh.proximity.signed_distance(mesh, local)  # trimesh: positive inside
    return (-np.asarray(inside) - HAND_HALF_THICKNESS_M).reshape(T, 2)


def surface_distance(mesh: trimesh.Trimesh, points_obj: np.ndarray) -> np.ndarray:
    """(N,) unsigned distance of points (object frame) to the object's surface."""
    _, dist, _ = trimesh.proximity.closest_point(mesh, points_obj)
    return np.asarray(dist)


def hand_contacts(palms: np.ndarray, obj_pos: np.ndarray, obj_rot: np.ndarray, mesh: trimesh.Trimesh,
                  fps: float, options: ContactOptions) -> np.ndarray:
    """(T,2) hand-on-object flags for palms (T,2,3) and an object pose track (T,3), (T,3,3)."""
    T = len(palms)
    local = np.einsum("tji,tkj->tki", obj_rot, palms - obj_pos[:, None])  # R^T (p - x)
    near = surface_distance(mesh, local.reshape(-1, 3)).reshape(T, 2) < options.hand_m
    relative = np.stack([speed(local[:, k], fps) for k in range(2)], axis=1)  # palm speed in the object frame
    moving = speed(obj_pos, fps) > options.object_moving
    flags = near & ((relative < options.hand_speed) | moving[:, None])
    return np.stack([clean_runs(flags[:, k], options.min_frames) for k in range(2)], axis=1)


def foot_contacts(ankles: np.ndarray, support: Callable[[np.ndarray], np.ndarray], rest_ankle: float, fps: float,
                  options: ContactOptions) -> np.ndarray:
    """(T,2) planted-foot flags for ankles (T,2,3)."""
    T = len(ankles)
    height = ankles[..., 2] - support(ankles.reshape(-1, 3)).reshape(T, 2) - rest_ankle
    slow = np.stack([speed(ankles[:, k], fps) for k in range(2)], axis=1) < options.foot_speed
    flags = (np.abs(height) < options.foot_m) & slow
    return np.stack([clean_runs(flags[:, k], options.min_frames) for k in range(2)], axis=1)


def seated(pelvis: np.ndarray, ankles: np.ndarray, support: Callable[[np.ndarray], np.ndarray],
           standing_height: float, options: ContactOptions) -> np.ndarray:
    """(T,) pelvis-on-seat flags."""
    above_support = pelvis[:, 2] - support(pelvis)
    above_feet = pelvis[:, 2] - ankles[..., 2].min(axis=1)
    flags = (above_support < options.seat_m) & (above_feet < options.seat_ratio * standing_height)
    return clean_runs(flags, options.min_frames)


def label_contacts(hands: np.ndarray | None, feet: np.ndarray, seat: np.ndarray, objects: int) -> ContactLabels:
    """Pack per-part flags into the gt.npz contact layout (hands touch object 0 when there is one)."""
    T = len(feet)
    hands = np.zeros((T, 2), bool) if hands is None else hands
    contact = np.stack([feet[:, 0], feet[:, 1], hands[:, 0], hands[:, 1], seat], axis=1)
    touching = -np.ones((T, len(CONTACT_NAMES)), int)
    if objects:
        touching[:, 2:4] = np.where(hands, 0, -1)
    held = np.zeros((T, objects), bool)
    if objects:
        held[:, 0] = hands.any(axis=1)
    return ContactLabels(list(CONTACT_NAMES), contact, touching, held)
