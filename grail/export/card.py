"""The policy card: ``policies/<name>/policy.json`` beside ``policy.onnx``.

It is the contract between training and every controller (sim2sim here, ``deploy_g1`` on the
robot): joint order, PD gains, default pose, action scale, control period and the observation
layout, so nothing is read from the training code at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grail.atomic import write_text_atomic
from grail.errors import GrailError

CARD_NAME = "policy.json"
ONNX_NAME = "policy.onnx"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservationTerm(_Strict):
    """One slice of the policy input, in order: ``obs[start:start+size]``."""

    name: str
    start: int = Field(ge=0)
    size: int = Field(ge=1)
    group: Literal["reference", "proprio"]
    description: str = ""


class Observation(_Strict):
    size: int = Field(ge=1)
    terms: list[ObservationTerm]
    normalisation: Literal["inside_onnx"] = "inside_onnx"  # the running mean/std is a layer of the graph

    @model_validator(mode="after")
    def _contiguous(self) -> "Observation":
        at = 0
        for t in self.terms:
            if t.start != at:
                raise ValueError(f"term {t.name!r} starts at {t.start}, expected {at}")
            at += t.size
        if at != self.size:
            raise ValueError(f"terms cover {at} values, size says {self.size}")
        return self


class Latent(_Strict):
    """The tracker's interface for later adaptors: reference terms -> latent, latent + proprio -> action."""

    dim: int = Field(ge=1)
    reference_terms: list[str]
    proprio_terms: list[str]


class MotionSpec(_Strict):
    """The reference the policy expects each control step."""

    format: str = "robot/motion.npz"
    anchor_body: str
    tracked_bodies: list[str]
    end_effector_bodies: list[str]
    fps: float = Field(gt=0)


class PolicyCard(_Strict):
    format: Literal["grail-policy"] = "grail-policy"
    version: Literal[1] = 1
    task: str
    robot: str
    joint_names: list[str]             # action and joint-observation order
    kp: list[float]
    kd: list[float]
    armature: list[float]
    effort_limit: list[float]
    default_joint_pos: list[float]
    action_scale: list[float]          # target = default + scale * action
    physics_dt: float = Field(gt=0)
    decimation: int = Field(ge=1)
    observation: Observation
    latent: Latent
    motion: MotionSpec
    onnx_inputs: list[str] = ["obs"]
    onnx_outputs: list[str] = ["actions", "latent"]
    source_run: str = ""
    checkpoint: str = ""
    iteration: int = 0
    torch_onnx_max_abs_diff: float | None = None

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.decimation

    @model_validator(mode="after")
    def _lengths(self) -> "PolicyCard":
        n = len(self.joint_names)
        for name in ("kp", "kd", "armature", "effort_limit", "default_joint_pos", "action_scale"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values for {n} joints")
        return self

    def term(self, name: str) -> ObservationTerm:
        for t in self.observation.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CARD_NAME
        data = self.model_dump()
        data["control_dt"] = self.control_dt  # for readers; recomputed, not read back
        write_text_atomic(path, json.dumps(data, indent=1) + "\n")
        return path


def load_card(directory: Path | str) -> PolicyCard:
    """Read ``policy.json`` from a policy directory; bad files fail naming the file and field."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        raise GrailError("no policy card here (export a run with `grail export`)", file=path)
    if not (Path(directory) / ONNX_NAME).is_file():
        raise GrailError("the policy directory has no ONNX graph", file=Path(directory) / ONNX_NAME)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GrailError(f"not JSON: {exc}", file=path) from None
    if isinstance(data, dict):
        data.pop("control_dt", None)
    try:
        return PolicyCard.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise GrailError(err["msg"], file=path, field=".".join(str(p) for p in err["loc"]) or None) from None
