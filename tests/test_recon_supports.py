"""The support map against MuJoCo's own rays through the composed scene: the top it finds from
above, and, under the chair's seat, the floor."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from grail.recon.supports import SupportMap, static_scene
from grail.scene.spec import load_resolved
from grail.video.geometry import UNDER_MARGIN_M

FLOOR_AND_PARTS = np.array([1, 0, 0, 1, 0, 0], np.uint8)  # geom groups: the floor (0), collision parts (3)
PARTS = np.array([0, 0, 0, 1, 0, 0], np.uint8)


@pytest.fixture(scope="module")
def chair(composed):
    scene = composed("sit_chair", 0) / "scene"
    seat = next(f for f in load_resolved(scene / "spec.yaml").furniture if f.kind == "chair")
    model = static_scene(scene / "scene.xml", ())
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    centre = np.asarray(seat.pose.pos, float)
    return SupportMap.from_scene(scene / "scene.xml", centre[:2], half_extent=1.0), model, data, centre


def _ray(model, data, start, direction, groups) -> float:
    geom = np.zeros(1, np.int32)
    return mujoco.mj_ray(model, data, np.asarray(start, float), np.asarray(direction, float), groups, 1, -1, geom)


def test_highest_support_is_where_rays_from_above_land(chair):
    """Over the whole chair and the floor around it, a point high above gets the height a ray cast
    straight down first meets (cells are 2 cm: sample their corners, where no interpolation acts)."""
    support, model, data, centre = chair
    rng = np.random.default_rng(0)
    xy = support.origin + rng.integers(30, 71, (400, 2)) * support.cell  # within 40 cm of the chair
    ray = np.array([3.0 - _ray(model, data, [x, y, 3.0], [0, 0, -1], FLOOR_AND_PARTS) for x, y in xy])
    assert 50 < (ray > 0.15).sum() < 350  # the sample covers the chair and the floor beside it
    high = support(np.column_stack([xy, np.full(len(xy), 2.0)]))
    assert np.allclose(high, ray, atol=1e-6), np.abs(high - ray).max()
    assert np.allclose(support(xy), ray, atol=1e-6)  # no height given: the highest


def test_a_foot_under_the_seat_stands_on_the_floor(chair):
    """Under the seat's centre a ray cast up from the floor meets its underside: a point more than
    the margin below that stands on the floor, one less than the margin below it on the seat (it
    is in it), one above on the seat."""
    support, model, data, centre = chair
    top = 3.0 - _ray(model, data, [*centre[:2], 3.0], [0, 0, -1], FLOOR_AND_PARTS)
    underside = 1e-3 + _ray(model, data, [*centre[:2], 1e-3], [0, 0, 1], PARTS)
    assert 0.15 < underside < top
    heights = [underside - UNDER_MARGIN_M - 0.01, underside - UNDER_MARGIN_M + 0.01, top + 0.05]
    got = support(np.array([[*centre[:2], z] for z in heights]))
    assert np.allclose(got, [0.0, top, top], atol=1e-6), got
