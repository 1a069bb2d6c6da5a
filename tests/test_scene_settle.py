"""Settling free bodies to rest: what counts as at rest, and what is refused."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from grail.errors import GrailError
from grail.scene.settle import settle

BOX = """<mujoco><option timestep="0.002"/><worldbody>
  <geom type="plane" size="5 5 0.1" friction="{friction} 0.005 0.0001"/>
  <body name="box" pos="0 0 {z}"><freejoint/>
    <geom type="box" size="0.1 0.1 0.05" mass="1" friction="{friction} 0.005 0.0001"/></body>
</worldbody></mujoco>"""


def _box(friction: float, z: float) -> tuple[mujoco.MjModel, mujoco.MjData]:
    model = mujoco.MjModel.from_xml_string(BOX.format(friction=friction, z=z))
    return model, mujoco.MjData(model)


def test_a_dropped_box_comes_to_rest_on_the_floor():
    model, data = _box(1.0, 0.2)
    result = settle(model, data)
    pos, quat = result.poses["box"]
    assert abs(pos[2] - 0.05) < 2e-3 and result.simulated_s < 2.0
    np.testing.assert_allclose(np.abs(quat), [1, 0, 0, 0], atol=1e-3)


def test_a_box_sliding_without_friction_is_refused():
    model, data = _box(0.0, 0.05)
    data.qvel[0] = 0.5  # it slides along x for ever: fast, and far over the last 0.2 s
    with pytest.raises(GrailError, match="still moving"):
        settle(model, data)


def test_a_bottle_rocking_in_place_counts_as_at_rest(tmp_path):
    """pickup_ground seed 4 was refused: its bottle rocks at 0.04 rad/s after 3 s, in place."""
    from pathlib import Path

    from grail.scene.compose import ComposeOptions, compose_sequence

    scenes = Path(__file__).resolve().parents[1] / "scenes"
    seq, _ = compose_sequence(scenes / "pickup_ground.yaml", 4, tmp_path, ComposeOptions(192, 108))
    assert (seq.path / "scene" / "scene.xml").is_file()
