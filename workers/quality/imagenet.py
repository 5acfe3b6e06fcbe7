"""The paper's 1000-way accuracy, with a torchvision Inception-v3 or ResNet-50 state dict file
the user already has (never downloaded), for ImageNet runs."""
from __future__ import annotations

import torch
import torch.nn as nn

from manifests.errors import UserError, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetClassifierError(UserError):
    """A --classifier-weights file that cannot be used."""


def load_imagenet_classifier(path: str, device: torch.device) -> tuple[nn.Module, int]:
    """A torchvision Inception-v3 or ResNet-50 from a state dict file (.pth/.pt, or
    .safetensors), and the side it reads images at. Never downloads anything."""
    import torchvision

    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImageNetClassifierError(f"--classifier-weights {path}: no such file") from None
    except Exception as exc:  # torch and safetensors raise many types for a foreign file
        raise ImageNetClassifierError(
            f"--classifier-weights {path} is unreadable ({type(exc).__name__}: {first_line(exc, 120)})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ImageNetClassifierError(f"--classifier-weights {path} is not a state dict of tensors")
    if any(k.startswith("Mixed_") for k in state):
        model, side = torchvision.models.inception_v3(weights=None, aux_logits="AuxLogits.fc.weight" in state,
                                                      init_weights=False), 299  # fmt: skip
    elif "layer4.2.conv3.weight" in state:
        model, side = torchvision.models.resnet50(weights=None), 224
    else:
        raise ImageNetClassifierError(
            f"--classifier-weights {path} is neither a torchvision Inception-v3 nor a ResNet-50 state dict"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ImageNetClassifierError(
            f"--classifier-weights {path} does not fit its architecture ({first_line(exc, 120)})"
        ) from None
    return model.eval().to(device), side


@torch.no_grad()
def imagenet_accuracy(model: nn.Module, side: int, images: torch.Tensor, global_label: int) -> float:
    """Share of uint8 images the 1000-way classifier assigns to `global_label`, images resized
    to the classifier's input as the paper did (bilinear)."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    hits = 0
    for chunk in images.split(32):
        x = F.interpolate(chunk.to(device).float() / 255, size=(side, side), mode="bilinear", align_corners=False)
        hits += (model((x - mean) / std).argmax(1) == global_label).sum().item()
    return hits / len(images)
