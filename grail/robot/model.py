"""Load the G1 MuJoCo model from the mjlab package that ships it (never vendored here).

mjlab is installed without its dependencies (``scripts/setup``): only its packaged files are
read, and the package is located without importing it (its ``__init__`` imports warp and tyro).
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import mujoco
import numpy as np

from grail.errors import GrailError
from grail.robot.g1 import G1, RobotSpec

G1_XML_IN_MJLAB = "asset_zoo/robots/unitree_g1/xmls/g1.xml"
HEAD_CAMERA = "head_camera"


def g1_xml_path() -> Path:
    """The packaged ``g1.xml``; a clear error when mjlab is missing."""
    spec = importlib.util.find_spec("mjlab")
    if spec is None or not spec.submodule_search_locations:
        raise GrailError("the mjlab package (which ships the G1 model) is not installed: run scripts/setup "
                         "or `pip install --no-deps mjlab==1.6.0`", field="robot")
    path = Path(next(iter(spec.submodule_search_locations))) / G1_XML_IN_MJLAB
    if not path.is_file():
        raise GrailError("mjlab does not ship the G1 model here", file=path, field="robot")
    return path


def robot_mjspec(robot: RobotSpec = G1) -> mujoco.MjSpec:
    """The robot as an editable MjSpec, with the head camera mount added as a site and a camera."""
    spec = mujoco.MjSpec.from_file(str(g1_xml_path()))
    cam = robot.head_camera
    body = spec.body(cam["body"])
    pitch = math.radians(cam["pitch_down_deg"])
    # Site frame: x forward, z up, pitched down about y. Camera frame (MuJoCo): looks along -z, y up.
    site_quat = np.array([math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0])
    body.add_site(name=HEAD_CAMERA, pos=list(cam["pos"]), quat=site_quat.tolist(), size=[0.01, 0.01, 0.01])
    look = np.zeros(4)
    mujoco.mju_mulQuat(look, site_quat, np.array([0.5, 0.5, -0.5, -0.5]))  # x fwd,z up -> -z fwd,y up
    body.add_camera(name=HEAD_CAMERA, pos=list(cam["pos"]), quat=look.tolist(), fovy=58.0)
    return spec


@lru_cache(maxsize=4)
def robot_model(name: str = G1.name) -> mujoco.MjModel:
    """Compiled robot model (cached; treat as read-only)."""
    from grail.robot.g1 import robot_spec

    return robot_mjspec(robot_spec(name)).compile()


def joint_qpos_indices(model: mujoco.MjModel, robot: RobotSpec = G1, prefix: str = "") -> np.ndarray:
    """qpos address of each robot joint in SDK order; checks the model has every joint."""
    out = []
    for name in robot.joint_names:
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, prefix + name)
        if jid < 0:
            raise GrailError(f"the model has no joint {name!r}", field="joint_names")
        out.append(model.jnt_qposadr[jid])
    return np.asarray(out)


def robot_body_names(model: mujoco.MjModel) -> list[str]:
    """Bodies in MuJoCo model order, world excluded (the body axis of motion.npz)."""
    return [model.body(b).name for b in range(1, model.nbody)]
