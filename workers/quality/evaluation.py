"""The paper's evaluation of one split's generator, offline: per class, discriminability
(accuracy of the split's own classifier on generated samples, beside its accuracy on
held-out real images), diversity (MS-SSIM of random same-class pairs, generated and real,
and the spread ratio and distinctness of workers/quality/yardstick.py), memorisation (distance to the nearest training
image, against held-out real images'), and FID / KID in the classifier's feature space.

The measures themselves are in measures.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from workers.quality.measures import MS_SSIM_PAIRS, fid, kid, mean_ms_ssim, nearest_distance
from workers.quality.verdicts import COLLAPSED, OK, guard_verdict
from manifests.tables.evaluation import MEMORISED
from workers.quality.yardstick import Yardstick, to_input

MS_SSIM_MARGIN = 0.05
"""Collapsed means generated MS-SSIM above the highest real class's by more than this. The
paper's criterion is a statement about all classes together; per class, a perfect generator
of the most self-similar class would exceed the ceiling by chance half the time (the mean of
100 pairs varies by about 0.01-0.02), so a margin of a few of those keeps the verdict for
real collapse."""
MEMORISATION_FLOOR = 0.5
"""A class is memorised when its samples lie, on average, less than half as far from their
nearest training image as held-out real images of the class do."""
REAL_FEATURES_LIMIT = 2000
"""Real images per split that FID/KID compare against (all of them, up to this many)."""


@dataclass
class ClassEvaluation:
    local_label: int
    accuracy: float
    real_accuracy: float | None
    ms_ssim: float | None
    real_ms_ssim: float | None
    diversity: float
    fid: float | None
    novelty: float | None
    """Nearest-training-image distance of samples / of held-out real images (~1: as novel as
    new real photos; near 0: copies)."""
    distinctness: float | None = None
    """Nearest-other-sample distance over the samples' spread, relative to real images'
    (yardstick.py): far under 1 when a few pictures repeat."""
    imagenet_accuracy: float | None = None


@torch.no_grad()
def evaluate_classes(yardstick: Yardstick, images: torch.Tensor, labels: torch.Tensor,
                     samples: list[torch.Tensor], seed: int) -> tuple[list[ClassEvaluation], float | None, float | None]:  # fmt: skip
    """Every measure for each local class, given its generated uint8 samples, and the
    split's FID and KID. `images`/`labels` are the split's real images (uint8) and labels."""
    device = yardstick.device
    held_out = yardstick.held_out
    model = yardstick.model
    real_pick = (~held_out).nonzero().flatten()
    real_pick = real_pick[:: max(1, len(real_pick) // REAL_FEATURES_LIMIT)][:REAL_FEATURES_LIMIT]
    real_features = torch.cat([model.features(to_input(chunk.to(device))).cpu() for chunk in images[real_pick].split(512)])
    fake_features_all = []
    rows = []
    for label, fakes in enumerate(samples):
        score, features = yardstick.measure(to_input(fakes), label)
        fake_features_all.append(features.cpu())
        of_class = labels == label
        trained, tested = images[of_class & ~held_out], images[of_class & held_out]
        class_real_features = model.features(to_input(trained[:REAL_FEATURES_LIMIT].to(device))).cpu()
        class_fid = fid(class_real_features, features.cpu())
        novelty = None
        if len(tested) and len(trained):
            reference = nearest_distance(tested, trained)
            novelty = nearest_distance(fakes, trained) / reference if reference > 0 else None
        rows.append(ClassEvaluation(
            local_label=label, accuracy=score.accuracy, real_accuracy=yardstick.real_accuracy[label],
            ms_ssim=mean_ms_ssim(fakes, MS_SSIM_PAIRS, seed + label),
            real_ms_ssim=mean_ms_ssim(images[of_class], MS_SSIM_PAIRS, seed + label),
            diversity=score.diversity, distinctness=score.distinctness, fid=class_fid, novelty=novelty,
        ))  # fmt: skip
    fake_features = torch.cat(fake_features_all)
    return rows, fid(real_features, fake_features), kid(real_features, fake_features)


def class_columns(row: ClassEvaluation) -> dict:
    """The measures of a class as evaluation.parquet's columns of the same names."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.name != "local_label"}


def verdict(row: ClassEvaluation, ms_ssim_ceiling: float | None) -> str:
    """collapsed (the paper's MS-SSIM criterion, with MS_SSIM_MARGIN), then the guard's
    verdict (collapsed by diversity, low-accuracy), then memorised; else ok."""
    if row.ms_ssim is not None and ms_ssim_ceiling is not None and row.ms_ssim > ms_ssim_ceiling + MS_SSIM_MARGIN:
        return COLLAPSED
    found = guard_verdict(row.accuracy, row.real_accuracy, row.diversity, row.distinctness)
    if found != OK:
        return found
    if row.novelty is not None and row.novelty < MEMORISATION_FLOOR:
        return MEMORISED
    return OK
