"""SMPL-X path with a synthetic model file the test writes (random values, real array shapes)."""

import numpy as np
import pytest

from grail.character import CharacterShape, build_character
from grail.character.model import REGIONS
from grail.errors import GrailError

from synthetic_smplx import NF, NJ, NV, write_synthetic_smplx


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return write_synthetic_smplx(tmp_path_factory.mktemp("smplx") / "SMPLX_NEUTRAL.npz")


def test_smplx_builds(model_file):
    c = build_character(CharacterShape("smplx", {"beta0": 0.5}, 0.0), model_path=str(model_file))
    assert c.vertices.shape == (NV, 3) and c.faces.shape == (NF, 3)
    assert len(c.bone_names) == NJ and c.bone_rest.shape == (NJ, 4, 4)
    assert abs(c.vertices[:, 2].min()) < 1e-6
    assert np.linalg.norm(c.joints["pelvis"][:2]) < 1e-6
    assert c.joints["head"][2] > c.joints["pelvis"][2] > c.joints["left_ankle"][2]
    assert c.joints["left_hip"][1] > 0  # SMPL-X's left (+x) is GRAIL's +Y
    assert c.skin_bone_indices.shape == c.skin_bone_weights.shape
    assert set(np.unique(c.face_region)) <= set(range(len(REGIONS)))
    assert np.allclose(c.lbs(c.bone_rest), c.vertices)


def test_smplx_missing_file(tmp_path):
    p = tmp_path / "nope.npz"
    with pytest.raises(GrailError, match="nope.npz"):
        build_character(CharacterShape("smplx", {}, 0.0), model_path=str(p))


def test_smplx_malformed_file(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, v_template=np.zeros((3, 3)))
    with pytest.raises(GrailError, match="bad.npz"):
        build_character(CharacterShape("smplx", {}, 0.0), model_path=str(p))
    p2 = tmp_path / "garbage.npz"
    p2.write_bytes(b"not a zip")
    with pytest.raises(GrailError, match="garbage.npz"):
        build_character(CharacterShape("smplx", {}, 0.0), model_path=str(p2))


def test_smplx_needs_path_and_known_params(model_file):
    with pytest.raises(GrailError, match="model_path"):
        build_character(CharacterShape("smplx", {}, 0.0))
    with pytest.raises(GrailError, match="gamma"):
        build_character(CharacterShape("smplx", {"gamma": 1.0}, 0.0), model_path=str(model_file))
