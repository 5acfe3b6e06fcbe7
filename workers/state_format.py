"""A training state on disk without pickle: a safetensors file whose tensors are the state's
tensors, and whose metadata holds the nested structure around them (dicts, lists, tuples,
numbers, strings) as JSON, with each tensor replaced by its name in the file.

Loading one parses JSON and copies raw tensor bytes: nothing in the file can run code,
whatever torch is installed (CVE-2025-32434 let a crafted pickle run code through
`torch.load(weights_only=True)` before torch 2.6). States written by earlier versions are
torch.save pickles; `is_pickled` tells them apart by their first bytes (a zip archive).
"""
from __future__ import annotations

import json
from collections import OrderedDict

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

STRUCTURE_KEY = "acgan_ensemble.state"
"""The safetensors metadata entry holding the state's structure as JSON."""
FORMAT_KEY = "format"
FORMAT = "acgan-ensemble-state/1"

# JSON has objects with string keys and arrays only; the tags below carry what else a
# training state holds: an optimiser's state is keyed by int, its betas are a tuple, and a
# module's state_dict carries `_metadata` (each submodule's version, which load_state_dict
# hands to its load hooks: without it spectral norm takes the weights for an old format's and
# recomputes its vectors, and a resume is no longer exact).
_TENSOR, _TUPLE, _ITEMS, _STATE_DICT, _METADATA = "$tensor", "$tuple", "$items", "$state_dict", "$metadata"
_ORDER = "order"


def _dim_order(tensor: torch.Tensor) -> list[int]:
    """The tensor's dimensions from the outermost in memory to the innermost (ties, from
    dimensions of size 1, in their own order): permuted by it, a dense tensor is contiguous."""
    return sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))


class StateFormatError(ValueError):
    """A file that is not a training state this version can read."""


def save_state(state: dict, path: str) -> None:
    """Write `state` (nested dicts/lists/tuples of tensors and plain values) to `path`."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(value):
        if isinstance(value, torch.Tensor):
            name = f"t{len(tensors)}"
            order = _dim_order(value)
            # Stored in memory order, with the order to view it back in: a channels_last
            # weight's Adam moments must keep its layout, or the fused Adam step that updates
            # both as flat arrays pairs the wrong elements after a resume.
            tensors[name] = value.detach().cpu().permute(order).contiguous().clone()  # no shared storage
            return {_TENSOR: name} if order == sorted(order) else {_TENSOR: name, _ORDER: order}
        if isinstance(value, tuple):
            return {_TUPLE: [encode(v) for v in value]}
        if isinstance(value, list):
            return [encode(v) for v in value]
        if isinstance(value, dict) and getattr(value, "_metadata", None) is not None:
            return {_STATE_DICT: encode(dict(value)), _METADATA: encode(dict(value._metadata))}
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: encode(v) for k, v in value.items()}
            return {_ITEMS: [[encode(k), encode(v)] for k, v in value.items()]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"a training state cannot hold a {type(value).__name__}")

    structure = json.dumps(encode(state))
    save_file(tensors, path, metadata={FORMAT_KEY: FORMAT, STRUCTURE_KEY: structure})


def load_state(path: str, header_only: bool = False) -> dict:
    """The state `save_state` wrote to `path`. With `header_only`, its tensor data is not read
    and each tensor is None: a cheap check that the file is a whole training state. A
    truncated or foreign file raises StateFormatError."""
    try:
        with safe_open(path, framework="pt") as file:
            metadata, names = file.metadata() or {}, list(file.keys())
            structure = _parsed(metadata)
            # Cloned: get_tensor's tensors are views of the file's mapped pages, which a
            # file truncated or rewritten in place would pull from under training (SIGBUS).
            tensors = {name: None if header_only else file.get_tensor(name).clone() for name in names}
    except SafetensorError as exc:
        raise StateFormatError(f"not a whole safetensors file ({exc})") from None
    return _decode(structure, tensors)


def is_pickled(head: bytes) -> bool:
    """Whether a file starting with `head` is a torch.save archive (the format before this one)."""
    return head.startswith(b"PK\x03\x04")


def _parsed(metadata: dict) -> object:
    if metadata.get(FORMAT_KEY) != FORMAT or STRUCTURE_KEY not in metadata:
        raise StateFormatError(f"not an acgan-ensemble training state (format {metadata.get(FORMAT_KEY)!r})")
    try:
        return json.loads(metadata[STRUCTURE_KEY])
    except ValueError as exc:
        raise StateFormatError(f"its structure is not JSON ({exc})") from None


def _decode(value, tensors: dict):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        name = value[_TENSOR]
        if name not in tensors:
            raise StateFormatError(f"its structure names a tensor {name!r} the file does not hold")
        tensor = tensors[name]
        if _ORDER in value and tensor is not None:
            tensor = tensor.permute(sorted(range(len(value[_ORDER])), key=value[_ORDER].__getitem__))
        return tensor
    if _STATE_DICT in value:
        state_dict = OrderedDict(_decode(value[_STATE_DICT], tensors))
        state_dict._metadata = OrderedDict(_decode(value[_METADATA], tensors))  # as Module.state_dict() sets it
        return state_dict
    if _TUPLE in value:
        return tuple(_decode(v, tensors) for v in value[_TUPLE])
    if _ITEMS in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value[_ITEMS]}
    return {k: _decode(v, tensors) for k, v in value.items()}
