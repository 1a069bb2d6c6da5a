"""Each arm's depth flips, chosen over the whole clip by the fit's own objective.

One view leaves each arm four configurations that reproject alike (`arm_flip.arm_configurations`:
the elbow before or beyond its shoulder's sphere, the wrist before or beyond its elbow's), and
L-BFGS keeps whichever its start fell into. The fit's priors can tell them apart (an elbow off its
hinge, an arm behind the back or through the body, a hand out to the side), but only between
whole configurations: gradients do not carry an arm across a flip. So before the fit's last stage
every frame's arm is also posed in each of its four configurations, each frame scored by its own
share of the objective, and the cheapest sequence chosen by dynamic programming, a change of
configuration charged as the objective's accelerations charge a jump: an arm changes
configuration where two of them meet (its ray grazes the sphere), not by a jump. The fitted pose
is a fifth choice, so a frame keeps it unless a configuration costs less as it stands, before
any polishing, by a margin.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from grail.recon.arm_flip import SIDES, arm_configurations, turn_arm_onto
from grail.recon.body import TorchRig
from grail.recon.hoi import rig_pose
from grail.recon.viterbi import shortest_path


def cheapest_path(unary: np.ndarray, points: np.ndarray, accel_m: float) -> np.ndarray:
    """(T,) the choice per frame, of S, minimising the sum of unary (S,T) and of what each change
    of choice costs: a jump of the points (S,T,B,3) from the one choice to the other in that
    frame, which the objective's accelerations charge twice, (jump / accel_m)^2 in each of the
    two frames about it (`viterbi.shortest_path`). Only changes are charged, not a
    choice's own motion: the choices other than the fit are unpolished, their tracks jitter
    where the fit's rays graze a sphere, and polishing smooths that (oracle pickup_ground s2, the
    right arm: the truth's configuration 14.5 cheaper frame by frame over 85 frames, and 15.1
    dearer in accelerations as it stood)."""
    jumps = points[:, None, 1:] - points[None, :, 1:]  # (S,S,T-1,B,3) [from, to] in the later frame
    step = np.moveaxis(2.0 * (jumps ** 2).sum(axis=(-1, -2)) / accel_m ** 2, -1, 0)
    return shortest_path(unary.T, step)


def searched_arms(rig: TorchRig, root: np.ndarray, local: np.ndarray, eye: np.ndarray,
                  frame_costs: Callable[[np.ndarray], np.ndarray], accel_m: float, margin: float,
                  apart_m: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations (T,J,3) with each arm, the left then the right, on its cheapest sequence of
    configurations (`cheapest_path`), and (T,2) the frames changed per arm. frame_costs: each
    frame's share of the objective (T,) of a pose's local rotations; eye: the camera centre. A
    configuration whose elbow or wrist is more than apart_m from the fitted arm's pays `margin` a
    frame: the fit is polished and the others are not, and differences that small are noise."""
    out = np.array(local, copy=True)
    changed = np.zeros((len(local), 2), bool)
    every = np.arange(len(local))
    for k, side in enumerate(SIDES):
        bones = [rig.joint_bones[f"{side}_{name}"] for name in ("shoulder", "elbow", "wrist")]
        pos, deltas = rig_pose(rig, root, out)
        elbows, wrists, _ = arm_configurations(eye, *(pos[:, bone] for bone in bones))
        choices = [out]
        for c in range(len(elbows)):
            turned = np.array(out, copy=True)
            turn_arm_onto(rig, pos, deltas, out, turned, np.zeros_like(changed), k, every, elbows[c], wrists[c])
            choices.append(turned)
        unary = np.stack([frame_costs(choice) for choice in choices])
        points = np.stack([rig_pose(rig, root, choice)[0][:, bones[1:]] for choice in choices])
        apart = np.linalg.norm(points - points[:1], axis=-1).max(axis=-1) > apart_m
        path = cheapest_path(unary + margin * apart, points, accel_m)
        for c in range(1, len(choices)):
            rows = path == c
            out[rows] = choices[c][rows]
            changed[rows, k] = True
    return out, changed
