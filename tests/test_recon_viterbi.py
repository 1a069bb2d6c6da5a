"""The cheapest state sequence (grail.recon.viterbi): a switch is paid only where it saves more."""

import numpy as np

from grail.recon.viterbi import shortest_path


def test_the_shortest_path_pays_a_switch_only_where_it_saves_more():
    unary = np.array([[0.0, 5.0], [3.0, 0.0], [3.0, 0.0], [3.0, 0.0]])
    step = np.broadcast_to(np.array([[0.0, 4.0], [4.0, 0.0]]), (3, 2, 2))
    assert shortest_path(unary, step).tolist() == [0, 1, 1, 1]  # 4 to switch, 9 saved
    assert shortest_path(unary[:2], step[:1]).tolist() == [0, 0]  # 4 to switch, 3 saved
