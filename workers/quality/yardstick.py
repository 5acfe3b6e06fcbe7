"""A split's own yardstick: a small classifier trained on the split's real images, and the
measures built on it. The training guard (workers/train.py) and `ensemble evaluate`
(workers/quality/evaluation.py) both score generators with it, so a class flagged during training is
flagged by the same rule afterwards.

Per class of a split, from n generated images:
    accuracy    share of them the classifier assigns to their class (the paper's
                "discriminability", with our own classifier instead of Inception)
    diversity   how much they vary / how much the class's real images vary: mean pairwise
                distance, the smaller of the ratios in pixels and in the classifier's features
                (a collapsed class, the same picture over and over, scores near 0)
    distinctness  how far each image lies from its nearest other one, over their spread, in
                pixels / the same for the class's real images (measures.nearest_to_spread):
                a few pictures repeated with small changes score far under 1, however
                different those few are from each other (which diversity alone misses)

What a class is then called, and the floors that decide it, are in verdicts.py.

The classifier is trained once per split, deterministically (its own random stream, so the
GAN's is untouched and resume stays exact), and kept beside the checkpoints.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from workers.quality.measures import ClassScore, mean_distance, nearest_to_spread

if TYPE_CHECKING:
    from manifests.storage import Location

CLASSIFIER_WEIGHTS = "classifier.safetensors"
CLASSIFIER_FORMAT = "acgan-ensemble/classifier"
CLASSIFIER_VERSION = "1"
HELD_OUT_FRACTION = 0.1
"""Real images per class kept out of the classifier's training: its ceiling (real accuracy),
and the reference for memorisation."""
CLASSIFIER_BATCH = 32
SPREAD_IMAGES = 64
"""Real images per class whose spread is the reference for diversity and distinctness."""
SPREAD_SET = 512
"""Real images per class (at most, evenly spaced) whose mean pairwise distance diversity divides
by: with 64, real images used as samples scored 0.70-1.29, with 512 0.79-1.12 (bench/README.md)."""
GUARD_SAMPLES = SPREAD_IMAGES
"""Generated images per class at each guard check: as many as the real reference, since how
near the nearest neighbour lies depends on how many there are."""

class SplitClassifier(nn.Module):
    """Stride-2 conv + batch norm + ReLU stages (16 maps, doubling, at most 256) down to 4x4,
    global average pooling (the features), then a linear layer (the class logits).
    Input: float images in [-1, 1], as the generator makes them."""

    def __init__(self, image_size: int, channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        width, maps, side = channels, 16, image_size
        while side > 4:
            layers += [nn.Conv2d(width, maps, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(maps),
                       nn.ReLU(inplace=True)]  # fmt: skip
            width, maps, side = maps, min(maps * 2, 256), (side + 1) // 2
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = width  # torchmetrics' FID/KID read this
        self.head = nn.Linear(width, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, S, S) -> float in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def held_out_mask(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """A deterministic HELD_OUT_FRACTION of each class (at least one image of a class that has
    two or more), True where held out."""
    rng = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique().tolist():
        index = (labels == label).nonzero().flatten()
        count = max(1, round(HELD_OUT_FRACTION * len(index))) if len(index) >= 2 else 0
        mask[index[torch.randperm(len(index), generator=rng)[:count]]] = True
    return mask


@dataclass
class Yardstick:
    """A split's trained classifier, with what it measured on the real images."""

    model: SplitClassifier
    held_out: torch.Tensor
    """bool mask over the split's images: those the classifier never trained on."""
    real_accuracy: list[float | None]
    """Per local class: accuracy on its held-out real images (None without any)."""
    real_pixel_spread: list[float]
    real_feature_spread: list[float]
    references: list[torch.Tensor]
    """Per local class: the indices (into the split's images) of its reference real images,
    an evenly spaced SPREAD_IMAGES of those the classifier trained on."""
    real_distinctness: list[float]
    """Per local class: measures.nearest_to_spread of its reference images, in pixels."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def score(self, fakes: torch.Tensor, local_label: int) -> ClassScore:
        """Accuracy, diversity and distinctness of float images in [-1, 1] generated for one class."""
        return self.measure(fakes, local_label)[0]

    @torch.no_grad()
    def measure(self, fakes: torch.Tensor, local_label: int) -> tuple[ClassScore, torch.Tensor]:
        """score(), and the classifier's features of the images (for FID and KID)."""
        fakes = fakes.to(self.device)
        features = self.model.features(fakes)
        accuracy = (self.model.head(features).argmax(1) == local_label).float().mean().item()
        pixels = fakes.add(1).div(2)
        pixel_spread = mean_distance(pixels) / max(self.real_pixel_spread[local_label], 1e-12)
        feature_spread = mean_distance(features) / max(self.real_feature_spread[local_label], 1e-12)
        # Nearest neighbours come nearer as there are more of them: distinctness is the mean over
        # groups of as many samples as the class has reference images (the guard makes that many,
        # `ensemble evaluate` 100 by default).
        size = max(2, len(self.references[local_label]))
        groups = [pixels[i : i + size] for i in range(0, len(pixels) - size + 1, size)] or [pixels]
        distinct = sum(map(nearest_to_spread, groups)) / len(groups) / max(self.real_distinctness[local_label], 1e-12)
        return ClassScore(accuracy, min(pixel_spread, feature_spread), distinct), features


def data_key(images: torch.Tensor, labels: torch.Tensor) -> str:
    """A fingerprint of a split's images: shape, labels and a strided sample of pixels."""
    digest = hashlib.sha1(f"{CLASSIFIER_VERSION} {tuple(images.shape)}".encode())
    digest.update(labels.numpy().tobytes())
    stride = max(1, len(images) // 512)
    digest.update(images[::stride].contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_classifier(images: torch.Tensor, labels: torch.Tensor, held_out: torch.Tensor, num_classes: int,
                     seed: int, device: torch.device, steps: int) -> SplitClassifier:  # fmt: skip
    """A fixed number of Adam steps on the images not held out, with small random shifts.
    Runs on its own random stream: the caller's (the GAN's) is left exactly as it was."""
    size, channels = images.shape[-1], images.shape[1]
    train_index = (~held_out).nonzero().flatten()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = SplitClassifier(size, channels, num_classes).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
        rng = torch.Generator().manual_seed(seed)
        shift = max(1, size // 16)
        model.train()
        for _ in range(steps):
            pick = train_index[torch.randint(0, len(train_index), (CLASSIFIER_BATCH,), generator=rng)]
            dx, dy = torch.randint(-shift, shift + 1, (2,), generator=rng).tolist()
            batch = torch.roll(to_input(images[pick].to(device)), shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(batch), labels[pick].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def _measure_real(model: SplitClassifier, images: torch.Tensor, labels: torch.Tensor, held_out: torch.Tensor,
                  num_classes: int, device: torch.device) -> tuple[list, ...]:  # fmt: skip
    accuracy, pixel_spread, feature_spread, references, distinctness = [], [], [], [], []
    for label in range(num_classes):
        of_class = labels == label
        tested = (of_class & held_out).nonzero().flatten()
        if len(tested):
            predicted = model(to_input(images[tested].to(device))).argmax(1)
            accuracy.append((predicted == label).float().mean().item())
        else:
            accuracy.append(None)
        trained = (of_class & ~held_out).nonzero().flatten()
        # An evenly spaced subset: deterministic, and the same on every call.
        references.append(trained[:: max(1, len(trained) // SPREAD_IMAGES)][:SPREAD_IMAGES])
        reference = to_input(images[references[-1]].to(device))
        distinctness.append(nearest_to_spread(reference.add(1).div(2)))
        spread_set = to_input(images[trained[:: max(1, len(trained) // SPREAD_SET)][:SPREAD_SET]].to(device))
        pixel_spread.append(mean_distance(spread_set.add(1).div(2)))
        feature_spread.append(mean_distance(model.features(spread_set)))
    return accuracy, pixel_spread, feature_spread, references, distinctness


def load_or_train_yardstick(split_dir: "Location | str", images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                            seed: int, device: torch.device, steps: int) -> Yardstick:  # fmt: skip
    """The split's classifier from split_dir when it was trained on these very images, else
    trained now and saved there (atomically)."""
    from safetensors import SafetensorError
    from safetensors.torch import load, save_file

    from manifests.storage import location
    from workers.generator_files import safetensors_metadata

    path = location(split_dir) / CLASSIFIER_WEIGHTS
    key = data_key(images, labels)
    model = None
    if path.is_file():
        try:
            data = path.read_bytes()
            metadata = safetensors_metadata(data)
            if metadata.get("format") == CLASSIFIER_FORMAT and metadata.get("key") == key:
                weights = {name: t.to(device) for name, t in load(data).items()}
                held_out = weights.pop("held_out").cpu().bool()
                with torch.random.fork_rng(devices=[]):  # its init must not move the GAN's random stream
                    model = SplitClassifier(images.shape[-1], images.shape[1], num_classes).to(device)
                model.load_state_dict(weights)
                model.eval()
        except (SafetensorError, OSError, RuntimeError, KeyError, ValueError):
            model = None  # damaged or foreign: trained again and rewritten
    if model is None:
        held_out = held_out_mask(labels, seed)
        model = train_classifier(images, labels, held_out, num_classes, seed, device, steps)
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors["held_out"] = held_out.to(torch.uint8)
        metadata = {"format": CLASSIFIER_FORMAT, "key": key, "seed": str(seed), "steps": str(steps)}
        path.write_with(lambda tmp: save_file(tensors, tmp, metadata=metadata))
    measured = _measure_real(model, images, labels, held_out, num_classes, device)
    return Yardstick(model, held_out, *measured)
