"""The training step (workers/step.py): what it updates, and its precision option."""
import dataclasses

import pytest
import torch

from workers.presets import get_preset
from workers.step import GAN, draw_batch, train_step

CPU = torch.device("cpu")


def setup(config, seed: int = 0):
    torch.manual_seed(seed)
    gan = GAN.build(config, CPU)
    images = torch.randint(0, 256, (64, 3, config.image_size, config.image_size), dtype=torch.uint8)
    labels = torch.randint(0, config.num_classes, (64,))
    rng = torch.Generator().manual_seed(seed)
    return gan, lambda: draw_batch(images, labels, 8, config.z_dim, config.num_classes, rng)


@pytest.mark.parametrize("preset", ["cpu-32", "cifar-32"])  # D in one pass / D with batch norm in two
def test_d_weights_get_gradients_from_d_step_only(preset):
    """G's step must not spend a backward pass on D's weights (their gradients would be thrown
    away), and must leave D trainable for the next step."""
    gan, batch = setup(get_preset(preset).gan)
    computed = []
    for p in gan.discriminator.parameters():
        p.register_hook(lambda grad: computed.append(1) or grad)
    for _ in range(2):
        train_step(gan, batch())
    trainable = [p for p in gan.discriminator.parameters() if p.requires_grad]
    assert len(trainable) == len(list(gan.discriminator.parameters()))
    assert len(computed) == 2 * len(trainable)  # once per step: the D step's backward


def test_bf16_precision_trains_and_keeps_fp32_weights():
    config = dataclasses.replace(get_preset("cpu-32").gan, precision="bf16")
    gan, batch = setup(config)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    metrics = torch.stack([train_step(gan, batch()) for _ in range(3)])
    assert torch.isfinite(metrics).all()
    assert all(p.dtype == torch.float32 for p in gan.generator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters()))


def test_bf16_step_stays_close_to_fp32():
    """Same start, same batch: one bf16 step's losses match fp32's to bf16's precision."""
    config = get_preset("cpu-32").gan
    fp32, batch32 = setup(config)
    bf16, batch16 = setup(dataclasses.replace(config, precision="bf16"))
    a, b = train_step(fp32, batch32()), train_step(bf16, batch16())
    assert b[:2].tolist() == pytest.approx(a[:2].tolist(), rel=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_steps_on_cuda_with_fused_adam(precision):
    config = dataclasses.replace(get_preset("cifar-32").gan, precision=precision)
    device = torch.device("cuda")
    torch.manual_seed(0)
    gan = GAN.build(config, device)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (64,), device=device)
    rng = torch.Generator().manual_seed(0)
    metrics = torch.stack([train_step(gan, draw_batch(images, labels, 16, config.z_dim, 10, rng)) for _ in range(3)])
    assert metrics.device.type == "cuda" and torch.isfinite(metrics).all()
    assert all(p.device.type == "cuda" and p.dtype == torch.float32 for p in gan.generator.parameters())


def test_auto_precision_is_bf16_exactly_where_the_device_computes_it_natively():
    from workers.step import uses_bf16

    assert uses_bf16("bf16", CPU) and not uses_bf16("fp32", CPU)
    assert uses_bf16("auto", CPU) == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert GAN.build(get_preset("cpu-32").gan, CPU).bf16 == uses_bf16("auto", CPU)
    assert not GAN.build(get_preset("cifar-32").gan, CPU).bf16  # the paper presets stay fp32


def test_class_balanced_batches_hold_a_small_class_as_often_as_a_large_one():
    """With class_balanced (the folder recipe), a class of 10 images beside one of 90 is half
    of the real images D sees, as it is half of the fakes; drawn over images it is a tenth."""
    from workers.step import ClassIndex

    labels = torch.tensor([0] * 90 + [1] * 10 + [2] * 40)[torch.randperm(140, generator=torch.Generator().manual_seed(1))]
    images = torch.arange(140, dtype=torch.uint8).view(140, 1, 1, 1).expand(140, 3, 2, 2).contiguous()  # pixel = place
    rng, by_class = torch.Generator().manual_seed(0), ClassIndex.of(labels)
    balanced = [draw_batch(images, labels, 30, 4, 3, rng, balanced=by_class) for _ in range(200)]
    uniform = [draw_batch(images, labels, 30, 4, 3, rng) for _ in range(200)]
    share = lambda batches: torch.cat([b.real_labels for b in batches]).bincount(minlength=3) / (200 * 30)  # noqa: E731
    assert torch.equal(share(balanced), torch.full((3,), 1 / 3))  # exactly a third each, every batch
    assert abs(share(uniform)[1] - 10 / 140) < 0.02
    for b in balanced:  # the images are the labels' own
        picked = ((b.real[:, 0, 0, 0] + 1) * 127.5).round().long()
        assert torch.equal(labels[picked], b.real_labels)
    small = torch.cat([((b.real[:, 0, 0, 0] + 1) * 127.5).round().long()[b.real_labels == 1] for b in balanced])
    assert set(small.tolist()) == set((labels == 1).nonzero().flatten().tolist())  # every image of it, none other
