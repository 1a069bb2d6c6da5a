"""The cheapest sequence of discrete states over a clip's frames (Viterbi), shared by the searches
that choose an arm's depth flip per frame: over a hold (`held_arms`) and over the whole fit
(`arm_search`)."""

from __future__ import annotations

import numpy as np


def shortest_path(unary: np.ndarray, step: np.ndarray) -> np.ndarray:
    """(n,) the states of least total cost: unary (n,S) per frame and state, step (n-1,S,S) from
    each state to each of the next frame's."""
    cost, back = unary[0].copy(), np.zeros(unary.shape, int)
    for t in range(1, len(unary)):
        total = cost[:, None] + step[t - 1]
        back[t] = total.argmin(axis=0)
        cost = total.min(axis=0) + unary[t]
    path = [int(cost.argmin())]
    for t in range(len(unary) - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return np.array(path[::-1])
