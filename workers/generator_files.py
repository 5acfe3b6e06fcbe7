"""A generator's two files, read with torch and safetensors alone: its weights (safetensors,
the step in the metadata) and the JSON beside them (its config and classes). Shared by a run's
checkpoints (workers/checkpoints.py) and an exported bundle (ensemble/bundle.py), which must
load without pyarrow, Ray or the run folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from safetensors import SafetensorError
from safetensors.torch import load

from workers.config import GANConfig
from workers.model import Generator

FORMAT = "acgan-ensemble/generator"


class GeneratorFileError(ValueError):
    """Generator files that cannot be used; the message says why, for a one-line error that names the file."""


@dataclass(frozen=True)
class GeneratorInfo:
    config: GANConfig
    step: int
    split: int
    classes: list[int]
    class_names: list[str]
    quality: dict | None = None
    """The guard's scores of this generator (best checkpoints): seed, score, per-class figures."""


def safetensors_metadata(data: bytes) -> dict:
    """The __metadata__ of a safetensors file's bytes: an 8-byte little-endian header length,
    then the JSON header (the format's specification)."""
    size = int.from_bytes(data[:8], "little")
    if size == 0 or len(data) < 8 + size:
        raise ValueError("not a safetensors file: its header is empty or cut short")
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError:
        raise ValueError("not a safetensors file: its header is not JSON") from None
    return (header.get("__metadata__") if isinstance(header, dict) else None) or {}


def generator_from(document: dict, data: bytes, device: str = "cpu") -> tuple[Generator, GeneratorInfo]:
    """The generator of a JSON document and safetensors bytes, in eval mode, on `device`."""
    try:
        if document.get("format") != FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, expected {FORMAT!r}")
        config = GANConfig.from_dict(document["config"])
        step = int(safetensors_metadata(data).get("step", document["step"]))
        weights = {name: t.to(device) for name, t in load(data).items()}
        info = GeneratorInfo(config=config, step=step, split=int(document["split"]), classes=list(document["classes"]),
                             class_names=list(document["class_names"]), quality=document.get("quality"))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
        raise GeneratorFileError(f"is unreadable ({exc})") from None
    generator = Generator(config).to(device)
    generator.grey = document.get("grey") is True
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        raise GeneratorFileError(f"does not match its config ({exc})") from None
    return generator.eval(), info
