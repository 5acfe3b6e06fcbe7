"""The quality guard of a training split: at every checkpoint, a fixed batch of noise per
class goes through the generator and the split's real-data classifier scores the images
(workers/quality/yardstick.py). The best generator by that score is kept beside the latest, as
generator.best.safetensors, and its failing classes are what the split reports at the end.

The noise and the classifier depend on the split alone (not on the seed a quality retry
trains with), so scores compare across retries: the best file is the best of all of them.
"""
from __future__ import annotations

from manifests.storage import location

import torch

from workers.checkpoints import BEST_GENERATOR_WEIGHTS, GeneratorInfo, read_generator_info, save_generator
from workers.config import GANConfig, TrainJob
from workers.quality.yardstick import GUARD_SAMPLES, load_or_train_yardstick
from workers.quality.verdicts import OK, failed_measure, guard_verdict
from workers.quality.measures import ClassScore, quality_score

CLASSIFIER_STEPS_PER_GAN_STEP = 1 / 16
"""The classifier trains for 1/16 as many steps as the GAN, between 100 and 1000 (each about
a third of a cpu-32 GAN step in bf16). Fewer than 100 left it unsure of GAN samples that
real-data classifiers recognise (bench/README.md, "Choosing the guard's parameters")."""


MATURE_FRACTION = 0.25
"""A generator from the first quarter of its seed's steps is never kept as the best. The guard
sees recognisability and spread, not fidelity: early in training a generator's blotches of the
class's colours are recognised and vary as much as real images do, so they score as well as a
trained generator's pictures. On real photos, with G's class loss at 1.5, step 400 of 4000
(score 0.991) beat every later checkpoint (3600: 0.982) and became what `sample` served
(bench/README.md shows both)."""


def classifier_steps(gan_steps: int) -> int:
    return min(1000, max(100, round(gan_steps * CLASSIFIER_STEPS_PER_GAN_STEP)))


class QualityGuard:
    def __init__(self, job: TrainJob, config: GANConfig, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device):  # fmt: skip
        self.job, self.config = job, config
        self.split_dir = location(job.split_dir)
        seed = job.split if job.guard_seed is None else job.guard_seed
        self.yardstick = load_or_train_yardstick(self.split_dir, images.cpu(), labels.cpu(), config.num_classes, seed,
                                                 device, classifier_steps(job.steps))  # fmt: skip
        rng = torch.Generator().manual_seed(seed + 1)
        self.noise = torch.randn(config.num_classes * GUARD_SAMPLES, config.z_dim, generator=rng).to(device)
        self.labels = torch.arange(config.num_classes).repeat_interleave(GUARD_SAMPLES).to(device)
        self.best = read_generator_info(self.split_dir / BEST_GENERATOR_WEIGHTS) if self._has_best() else None

    def _has_best(self) -> bool:
        return (self.split_dir / BEST_GENERATOR_WEIGHTS).is_file()

    @property
    def best_score(self) -> float | None:
        return self.best["quality"]["score"] if self.best and "quality" in self.best else None

    @torch.no_grad()
    def check(self, generator: torch.nn.Module) -> list[ClassScore]:
        """Accuracy, diversity and distinctness per local class of the generator's images of the fixed noise,
        made in eval mode as sampling makes them."""
        was_training = generator.training
        generator.eval()
        fakes = generator(self.noise, self.labels).float()
        generator.train(was_training)
        return [self.yardstick.score(fakes[k * GUARD_SAMPLES : (k + 1) * GUARD_SAMPLES], k)
                for k in range(self.config.num_classes)]  # fmt: skip

    def keep_if_best(self, generator: torch.nn.Module, scores: list[ClassScore], step: int) -> bool:
        """Write the generator as the split's best when it beats the best so far and has
        trained at least MATURE_FRACTION of its steps."""
        score = quality_score(scores)
        if step < self.job.steps * MATURE_FRACTION or self.best_score is not None and score <= self.best_score:
            return False
        classes = []
        for k, (accuracy, diversity, distinctness) in enumerate(scores):
            real_accuracy = self.yardstick.real_accuracy[k]
            classes.append({"label": self.job.classes[k], "accuracy": accuracy, "diversity": diversity,
                            "distinctness": distinctness, "real_accuracy": real_accuracy,
                            "verdict": guard_verdict(accuracy, real_accuracy, diversity, distinctness)})  # fmt: skip
        quality = {"score": score, "seed": self.job.seed, "step": step, "samples_per_class": GUARD_SAMPLES,
                   "classes": classes}  # fmt: skip
        info = GeneratorInfo(config=self.config, step=step, split=self.job.split, classes=list(self.job.classes),
                             class_names=list(self.job.class_names), quality=quality)  # fmt: skip
        save_generator(self.split_dir, generator, info, BEST_GENERATOR_WEIGHTS)
        self.best = {"step": step, "quality": quality}
        return True

    @property
    def best_path(self) -> str | None:
        return str(self.split_dir / BEST_GENERATOR_WEIGHTS) if self.best else None

    @property
    def best_step(self) -> int | None:
        return int(self.best["step"]) if self.best else None

    def flags(self) -> list[dict]:
        """The best generator's classes that are not ok, as the manifest's `flags` hold them:
        {label, verdict, measure, value}, the measure being the figure that failed."""
        if not self.best or "quality" not in self.best:
            return []
        failing = [c for c in self.best["quality"]["classes"] if c["verdict"] != OK]
        measures = [failed_measure(c["verdict"], c["diversity"], c.get("distinctness")) for c in failing]
        return [{"label": c["label"], "verdict": c["verdict"], "measure": m, "value": float(c[m])}
                for c, m in zip(failing, measures)]  # fmt: skip
