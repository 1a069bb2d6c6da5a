"""A mink task for many position-only targets at once (knees, elbows, wrists).

mink's FrameTask handles a full pose through its Lie-group classes; for a point that only has a
position target that work is wasted, and doing it per point dominates the IK's time. This task
stacks the points: error = world positions - targets, Jacobian = MuJoCo's translational
Jacobians of the points, one cost per point.
"""

from __future__ import annotations

import mink
import mujoco
import numpy as np


class PointsTask(mink.Task):
    """Drive several bodies' or sites' origins to world positions (weighted per point)."""

    def __init__(self, model: mujoco.MjModel, frames: list[tuple[str, str]], lm_damping: float = 1.0) -> None:
        super().__init__(cost=np.ones(3 * len(frames)), gain=1.0, lm_damping=lm_damping)
        self.model = model
        self.kinds = [kind for _, kind in frames]
        self.ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE if kind == "site" else mujoco.mjtObj.mjOBJ_BODY,
                                      name) for name, kind in frames]
        if min(self.ids) < 0:
            missing = [name for (name, _), i in zip(frames, self.ids) if i < 0]
            raise ValueError(f"unknown frames {missing}")
        self.targets = np.zeros((len(frames), 3))
        self._jac = np.zeros((3, model.nv))

    def set_targets(self, targets: np.ndarray, costs: np.ndarray) -> None:
        """Target positions (P,3) and costs (P,) (per metre, as FrameTask's position cost)."""
        self.targets[:] = targets
        self.cost[:] = np.repeat(costs, 3)

    def positions(self, configuration: mink.Configuration) -> np.ndarray:
        data = configuration.data
        return np.array([data.site_xpos[i] if kind == "site" else data.xpos[i] for i, kind in zip(self.ids, self.kinds)])

    def compute_error(self, configuration: mink.Configuration) -> np.ndarray:
        return (self.positions(configuration) - self.targets).reshape(-1)

    def compute_jacobian(self, configuration: mink.Configuration) -> np.ndarray:
        data = configuration.data
        rows = []
        for i, kind in zip(self.ids, self.kinds):
            if kind == "site":
                mujoco.mj_jacSite(self.model, data, self._jac, None, i)
            else:
                mujoco.mj_jacBody(self.model, data, self._jac, None, i)
            rows.append(self._jac.copy())
        return np.vstack(rows)
