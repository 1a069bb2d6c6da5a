"""Robot-proportioned character: body model fit to the G1, rigged dressed mesh, MuJoCo skins."""

from grail.character.anny_body import DEFAULT_G1_SHAPE, CharacterShape, fit_g1_character
from grail.character.g1_proportions import G1_SEGMENTS
from grail.character.mjcf import (
    CharacterMJCF,
    character_mask,
    character_mjcf,
    pose_character,
)
from grail.character.model import REGIONS, CharacterModel, build_character

__all__ = [
    "CharacterMJCF", "CharacterModel", "CharacterShape", "DEFAULT_G1_SHAPE", "G1_SEGMENTS",
    "REGIONS", "build_character", "character_mask", "character_mjcf", "fit_g1_character",
    "pose_character",
]
