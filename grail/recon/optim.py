"""One way to run L-BFGS over torch parameters for the recon fits (strong Wolfe line search, so a
badly scaled step cannot blow up the objective), used by the human fit and the joint refinement."""

from __future__ import annotations

from typing import Callable

import torch


def minimise(params: list[torch.Tensor], objective: Callable[[], torch.Tensor], iterations: int) -> None:
    """Minimise objective() over params in place, at most `iterations` L-BFGS iterations."""
    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=iterations, history_size=30,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimiser.step(closure)


def geman_mcclure(r2: torch.Tensor, scale: float) -> torch.Tensor:
    """Squared residuals r2 made robust: about r2 below `scale`'s square, levelling off at it above,
    so a residual far beyond it (an outlier, a wrong guess) stops pulling. scale 0: r2 unchanged."""
    return r2 * scale ** 2 / (r2 + scale ** 2) if scale > 0 else r2
