"""Shared fixtures: offscreen GL backend, and scenes composed once per test session."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

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
