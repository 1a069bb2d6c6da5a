"""The robot placed in a sequence's scene (``scene/scene.xml``): one MuJoCo model for contact
queries (penetration, self-collision, seat heights) and for kinematic replay renders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from grail.errors import GrailError
from grail.robot.g1 import G1, RobotSpec
from grail.robot.model import robot_mjspec, robot_model

PREFIX = "robot/"


@dataclass
class RobotScene:
    """Scene + robot model with the index maps a replay needs."""

    model: mujoco.MjModel
    robot_qpos: np.ndarray        # qpos addresses of the robot's free joint + 29 joints (7 + 29)
    robot_bodies: np.ndarray      # body ids of the robot
    object_qpos: dict[str, int]   # scene free body name -> qpos address of its free joint

    def set_state(self, data: mujoco.MjData, robot_q: np.ndarray, objects: dict[str, tuple] | None = None) -> None:
        """Robot configuration (the robot model's qpos: free joint, then the joints in SDK order, which
        is the model's order) and object poses, then kinematics and cameras."""
        data.qpos[self.robot_qpos] = robot_q
        for name, (pos, quat) in (objects or {}).items():
            adr = self.object_qpos[name]
            data.qpos[adr:adr + 3], data.qpos[adr + 3:adr + 7] = pos, quat
        mujoco.mj_kinematics(self.model, data)
        mujoco.mj_camlight(self.model, data)  # cameras and lights follow their bodies


def _load_scene_spec(scene_xml: Path) -> mujoco.MjSpec:
    try:
        return mujoco.MjSpec.from_file(str(scene_xml))
    except Exception as err:  # MuJoCo raises ValueError for bad XML
        raise GrailError(f"cannot load the scene ({err})", file=scene_xml) from None


def _attach_robot(spec: mujoco.MjSpec, robot: RobotSpec) -> None:
    robot_spec_ = robot_mjspec(robot)
    for light in list(robot_spec_.lights):  # the robot file's tracking light would spot-light the scene
        robot_spec_.delete(light)
    spec.worldbody.add_frame().attach_body(robot_spec_.body(robot.root_body), PREFIX, "")


def static_scene_with_robot(scene_xml: Path, robot: RobotSpec = G1, movable: tuple[str, ...] = ()) -> mujoco.MjModel:
    """The scene frozen where it stands (no free joints) plus the robot: its qpos is exactly the
    robot model's, so the IK can keep clear of the furniture and terrain. Bodies named in
    `movable` (the objects) become mocap bodies, posed frame by frame through ``data.mocap_*``."""
    spec = _load_scene_spec(Path(scene_xml))
    for body in list(spec.worldbody.bodies):
        for joint in list(body.joints):
            spec.delete(joint)
        if body.name in movable:
            body.mocap = True
    _attach_robot(spec, robot)
    model = spec.compile()
    if model.nq != robot_model(robot.name).nq:
        raise GrailError("the scene has joints besides its free bodies", file=scene_xml)
    return model


def robot_in_scene(scene_xml: Path, robot: RobotSpec = G1) -> RobotScene:
    """Attach the robot (names prefixed ``robot/``) to the scene's world."""
    spec = _load_scene_spec(Path(scene_xml))
    _attach_robot(spec, robot)
    model = spec.compile()
    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, PREFIX + robot.root_body)
    bodies = [b for b in range(model.nbody) if model.body(b).name.startswith(PREFIX)]
    free = model.body_jntadr[root]
    joint_adr = [model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, PREFIX + j)]
                 for j in robot.joint_names]
    robot_qpos = np.concatenate([np.arange(model.jnt_qposadr[free], model.jnt_qposadr[free] + 7), joint_adr])
    objects = {}
    for b in range(1, model.nbody):
        name = model.body(b).name
        if name.startswith(PREFIX) or model.body_jntnum[b] != 1:
            continue
        j = model.body_jntadr[b]
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            objects[name] = int(model.jnt_qposadr[j])
    return RobotScene(model, robot_qpos.astype(int), np.asarray(bodies), objects)
