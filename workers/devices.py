"""Which device torch runs on, and how it is shown (in progress events and the manifest)."""
from __future__ import annotations

import torch


def pick_device(prefer_cuda: bool = True) -> torch.device:
    """CUDA when asked for and there is one, else the CPU."""
    return torch.device("cuda") if prefer_cuda and torch.cuda.is_available() else torch.device("cpu")


def describe_device(device: torch.device, assigned_gpus: list | None = None) -> str:
    """`cuda:0 (NVIDIA H100)`, `cpu`, or `cpu (GPU 2 assigned, no CUDA)` for a GPU that torch cannot use."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    if assigned_gpus:
        return f"cpu (GPU {','.join(map(str, assigned_gpus))} assigned, no CUDA)"
    return "cpu"
