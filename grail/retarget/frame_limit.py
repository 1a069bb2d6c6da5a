"""Collision constraints linearised once per frame instead of once per IK step.

mink's CollisionAvoidanceLimit measures every nearby geom pair (MuJoCo's geom distances and
contact Jacobians) each time it is asked, which is most of the IK's time when the scene has
furniture. Within one frame the few IK steps move the robot little, so the rows are measured at
the frame's first step and reused: each later step's bound is the first bound minus what the
steps so far already used of it: the distance closed so far, G (q - q_frame_start), times the
limit's per-step gain, which is what re-measuring would give to first order.
"""

from __future__ import annotations

import mink
import numpy as np
from mink.limits.limit import Constraint


class PerFrameLimit(mink.Limit):
    """Wraps a limit whose rows are expensive; call `new_frame()` when the targets change and
    `advanced(dq)` after each integrated step (dq: the step's tangent displacement)."""

    def __init__(self, limit: mink.Limit, shrink: float) -> None:
        self.limit = limit
        self.shrink = shrink  # the share of a used gap that also leaves the bound (the limit's per-step gain)
        self._cached: Constraint | None = None
        self._used: np.ndarray | None = None

    def new_frame(self) -> None:
        self._cached = None

    def advanced(self, dq: np.ndarray) -> None:
        if self._cached is not None and self._cached.G is not None:
            self._used = self._used + self._cached.G @ dq

    def compute_qp_inequalities(self, configuration: mink.Configuration, dt: float) -> Constraint:
        if self._cached is None:
            self._cached = self.limit.compute_qp_inequalities(configuration, dt)
            self._used = np.zeros(0 if self._cached.G is None else len(self._cached.h))
        G, h = self._cached
        if G is None:
            return self._cached
        return Constraint(G=G, h=h - self.shrink * self._used)
