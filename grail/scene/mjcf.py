"""MJCF text for a composed scene: floor, light, terrain, furniture, objects and the camera.

Visual meshes and convex collision parts are separate geoms: visuals never collide, collision
parts sit in a hidden group. Geom groups double as semantic classes for masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import numpy as np

from grail.scene.camera import PinholeCamera

GROUP_SUPPORT_STATIC = 0  # floor and terrain
GROUP_FURNITURE = 1
GROUP_OBJECT = 2
GROUP_COLLISION = 3  # hidden by default in MuJoCo's viewer and renderer
ROLE_GROUP = {"terrain": GROUP_SUPPORT_STATIC, "furniture": GROUP_FURNITURE, "object": GROUP_OBJECT}

CAMERA_NAME = "scene_cam"
FLOOR_NAME = "floor"


@dataclass
class MjcfItem:
    name: str
    role: str  # terrain | furniture | object
    visual_file: str
    collision_files: list[str]
    mass: float
    com: np.ndarray
    inertia: np.ndarray  # (3,3) about com
    rgba: tuple[float, float, float, float]
    pos: np.ndarray
    quat: np.ndarray  # wxyz
    static: bool


@dataclass
class Extras:
    """Fragments spliced in for rendering (the character), never written into scene.xml."""

    asset_xml: str = ""
    body_xml: str = ""
    deformable_xml: str = ""


@dataclass
class LightSetup:
    direction: np.ndarray
    intensity: float


def _vec(values) -> str:
    return " ".join(f"{float(v):.9g}" for v in np.asarray(values, float).ravel())


def _inertial(item: MjcfItem) -> str:
    I = np.asarray(item.inertia, float)
    full = [I[0, 0], I[1, 1], I[2, 2], I[0, 1], I[0, 2], I[1, 2]]
    return f'<inertial pos="{_vec(item.com)}" mass="{item.mass:.9g}" fullinertia="{_vec(full)}"/>'


def _item_body(item: MjcfItem) -> str:
    group = ROLE_GROUP[item.role]
    lines = [f'<body name="{item.name}" pos="{_vec(item.pos)}" quat="{_vec(item.quat)}">']
    if not item.static:
        lines.append(f'  <freejoint name="{item.name}_free"/>')
        lines.append("  " + _inertial(item))
    lines.append(
        f'  <geom name="{item.name}_visual" type="mesh" mesh="{item.name}_visual" material="{item.name}_mat" '
        f'group="{group}" contype="0" conaffinity="0" mass="0"/>'
    )
    for i in range(len(item.collision_files)):
        lines.append(
            f'  <geom name="{item.name}_col{i}" type="mesh" mesh="{item.name}_col{i}" group="{GROUP_COLLISION}" '
            f'rgba="0.5 0.5 0.5 0.3" mass="0" friction="1.0 0.02 0.001" condim="4"/>'
        )
    lines.append("</body>")
    return "\n".join(lines)


def _item_assets(item: MjcfItem) -> str:
    lines = [f'<mesh name="{item.name}_visual" file={quoteattr(item.visual_file)}/>']
    lines += [f'<mesh name="{item.name}_col{i}" file={quoteattr(f)}/>' for i, f in enumerate(item.collision_files)]
    lines.append(f'<material name="{item.name}_mat" rgba="{_vec(item.rgba)}" specular="0.2" shininess="0.3"/>')
    return "\n".join(lines)


def scene_mjcf(
    name: str,
    items: list[MjcfItem],
    meshdir: str,
    light: LightSetup,
    camera: PinholeCamera | None = None,
    extras: Extras | None = None,
) -> str:
    """The MJCF document. `meshdir` is relative ("meshes") on disk, absolute in memory."""
    extras = extras or Extras()
    width, height = (camera.width, camera.height) if camera else (640, 480)
    cam_xml = ""
    if camera is not None:
        cam_xml = (
            f'<camera name="{CAMERA_NAME}" pos="{_vec(camera.position)}" xyaxes="{camera.mujoco_xyaxes()}" '
            f'fovy="{camera.fov_deg:.9g}"/>'
        )
    else:
        cam_xml = f'<camera name="{CAMERA_NAME}" pos="3 0 1.3" xyaxes="0 1 0 -0.3 0 0.95" fovy="55"/>'
    d = np.asarray(light.direction, float)
    diffuse = _vec([light.intensity] * 3)
    return f"""<mujoco model={quoteattr(name)}>
  <compiler angle="radian" meshdir={quoteattr(meshdir)} autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <statistic extent="2" center="0 0 0.6"/>
  <visual>
    <global offwidth="{max(width, 640)}" offheight="{max(height, 480)}"/>
    <map znear="0.005" zfar="30"/>
    <quality shadowsize="4096" offsamples="4"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.25 0.25 0.25" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.78 0.86 0.95" rgb2="0.98 0.98 0.98" width="256" height="256"/>
    <texture name="floor_tex" type="2d" builtin="checker" rgb1="0.72 0.70 0.66" rgb2="0.66 0.64 0.60" width="512" height="512"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="10 10" texuniform="true" reflectance="0"/>
{_indent("".join(_item_assets(i) + chr(10) for i in items), 4)}{_indent(extras.asset_xml, 4)}
  </asset>
  <worldbody>
    <light name="sun" directional="true" dir="{_vec(d)}" diffuse="{diffuse}" specular="0.1 0.1 0.1" castshadow="true"/>
    <geom name="{FLOOR_NAME}" type="plane" size="30 30 0.1" material="floor_mat" group="{GROUP_SUPPORT_STATIC}" friction="1.0 0.02 0.001" condim="4"/>
{_indent(chr(10).join(_item_body(i) for i in items), 4)}
{_indent(extras.body_xml, 4)}
    {cam_xml}
  </worldbody>
{_deformable(extras.deformable_xml)}</mujoco>
"""


def _deformable(xml: str) -> str:
    return f"  <deformable>\n{_indent(xml, 4)}  </deformable>\n" if xml.strip() else ""


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line.strip() else line for line in text.splitlines()) + ("\n" if text.strip() else "")
