"""Shared fixtures: offscreen GL backend, and scenes composed and synthesized once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, NamedTuple  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    from grail.scene.camera import PinholeCamera
    from grail.video.gt import GroundTruth

REPO = Path(__file__).resolve().parents[1]
SCENES = REPO / "scenes"
TEMPLATES = sorted(p.stem for p in SCENES.glob("*.yaml"))
TEST_SIZE = (192, 108)  # small renders keep the suite fast; the camera logic is size-independent


@pytest.fixture(scope="session")
def composed(tmp_path_factory):
    """compose(template, seed) -> sequence directory, composing each pair once per session."""
    from grail.scene.compose import ComposeOptions, compose_sequence

    root = tmp_path_factory.mktemp("composed")
    cache: dict[tuple[str, int], Path] = {}

    def get(template: str, seed: int) -> Path:
        key = (template, seed)
        if key not in cache:
            seq, _ = compose_sequence(SCENES / f"{template}.yaml", seed, root, ComposeOptions(*TEST_SIZE))
            cache[key] = seq.path
        return cache[key]

    return get


class Truth(NamedTuple):
    """A composed scene's ground truth: its directory, the synthesized motion, and the scene
    camera at the benchmark's 1280x720 (where the reconstruction's pixel scales hold)."""

    scene_dir: Path
    gt: GroundTruth  # shared by every test that asks for it: read it, never write it
    camera: PinholeCamera


@pytest.fixture(scope="session")
def truth_of(composed):
    """truth_of(template, seed) -> Truth, synthesizing each pair once per session."""
    import json

    from grail.scene.camera import PinholeCamera
    from grail.video.procedural import synthesize
    from grail.video.render import scaled_camera

    cache: dict[tuple[str, int], Truth] = {}

    def get(template: str, seed: int) -> Truth:
        key = (template, seed)
        if key not in cache:
            scene_dir = composed(template, seed) / "scene"
            camera = PinholeCamera.from_json(json.loads((scene_dir / "camera.json").read_text()))
            cache[key] = Truth(scene_dir, synthesize(scene_dir).gt, scaled_camera(camera, 1280, 720))
        return cache[key]

    return get
