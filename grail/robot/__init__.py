"""The robot: names, limits and gains (``g1``), the MuJoCo model from mjlab (``model``), and the
robot motion files (``motion``)."""

from grail.robot.g1 import G1, RobotSpec, robot_spec

__all__ = ["G1", "RobotSpec", "robot_spec"]
