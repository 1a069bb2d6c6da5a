"""G1 proportions and the Anny fit (residual bound: 1.5 cm per segment, 3 cm for pelvis width,
whose G1 value (0.233 m hip-to-hip) is wider than any human pelvis in Anny's range)."""

import time

import pytest

from grail.character import DEFAULT_G1_SHAPE, G1_SEGMENTS, fit_g1_character
from grail.character.anny_body import CharacterShape, measure_anny
from grail.errors import GrailError

BOUND = {k: 0.015 for k in G1_SEGMENTS}
BOUND["pelvis_width"] = 0.03


def test_g1_numbers():
    assert G1_SEGMENTS["height"] == pytest.approx(1.32)
    assert G1_SEGMENTS["thigh"] == pytest.approx(0.306, abs=1e-3)
    assert G1_SEGMENTS["shank"] == pytest.approx(0.300, abs=1e-3)


def test_default_shape_matches_g1():
    meas = measure_anny(DEFAULT_G1_SHAPE.params)
    assert meas["height"] == pytest.approx(1.32, abs=0.01)
    for k, target in G1_SEGMENTS.items():
        assert abs(meas[k] - target) < BOUND[k], (k, meas[k], target)


@pytest.mark.slow
def test_fit_and_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAIL_CACHE_DIR", str(tmp_path))
    s = fit_g1_character()
    assert s.model == "anny"
    assert s.height_m == pytest.approx(1.32, abs=0.01)
    for k in G1_SEGMENTS:
        assert s.fit_residuals_m[k] < BOUND[k], (k, s.fit_residuals_m[k])
    assert list(tmp_path.glob("g1_character_anny-*.json"))
    t = time.perf_counter()
    s2 = fit_g1_character()
    assert time.perf_counter() - t < 0.5
    assert s2.params == s.params


def test_shape_from_dict_errors():
    with pytest.raises(GrailError, match="character.model"):
        CharacterShape.from_dict({"model": "nope", "params": {}}, file="spec.yaml")
