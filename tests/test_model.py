import dataclasses

import pytest
import torch
import torch.nn.functional as F

from workers.config import GANConfig
from workers.losses import discriminator_loss, generator_loss
from workers.model import Discriminator, Generator, Judgement
from workers.presets import PRESETS, get_preset


def small(size: int = 32, **overrides) -> GANConfig:
    """A DCGAN-shaped config of any size, small enough for quick tests."""
    stages = size.bit_length() - 3  # log2(size / 4)
    values = dict(image_size=size, g_start=4, g_widths=tuple(8 * 2 ** (stages - 1 - i) for i in range(stages)),
                  g_kernel=4, d_widths=tuple(8 * 2**i for i in range(stages)), d_strides=(2,) * stages, d_kernel=4)  # fmt: skip
    return GANConfig(**{**values, **overrides})


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("d_batchnorm,d_dropout", [(False, 0.0), (True, 0.5)])
def test_shapes_for_each_resolution(size, d_batchnorm, d_dropout):
    config = small(size, num_classes=10, d_batchnorm=d_batchnorm, d_dropout=d_dropout)
    g, d = Generator(config), Discriminator(config)
    images = g(torch.randn(2, config.z_dim), torch.tensor([0, 9]))
    assert images.shape == (2, 3, size, size)
    assert images.abs().max() <= 1.0
    judged = d(images)
    assert judged.source.shape == (2,) and judged.classes.shape == (2, 10) and judged.twin is None


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_runs_forward_and_backward_at_batch_2(name):
    config = dataclasses.replace(get_preset(name).gan, num_classes=10)
    torch.manual_seed(0)
    g, d = Generator(config), Discriminator(config)
    labels = torch.tensor([3, 7])
    images = g(torch.randn(2, config.z_dim), labels)
    assert images.shape == (2, 3, config.image_size, config.image_size)
    judged = d(images)
    loss = generator_loss(judged, labels, config) + discriminator_loss(d(images.detach()), labels, judged, labels, config)
    loss.backward()
    for model in (g, d):
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"no gradient reaches {missing[:3]}"


def test_paper_128_has_the_appendix_architecture():
    config = dataclasses.replace(get_preset("paper-128").gan, num_classes=10)
    g, d = Generator(config), Discriminator(config)
    assert g.project.in_features == 110 and g.project.out_features == 768 * 8 * 8  # the 768x8x8 fix
    transposed = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.out_channels, m.kernel_size, m.stride) for m in transposed] == [
        (384, (5, 5), (2, 2)), (256, (5, 5), (2, 2)), (192, (5, 5), (2, 2)), (3, (5, 5), (2, 2))]  # fmt: skip
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in convs] == [
        (16, 3, 2), (32, 3, 1), (64, 3, 2), (128, 3, 1), (256, 3, 2), (512, 3, 1)]  # fmt: skip
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()) == 5  # all but the first
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in d.modules()) == 6
    assert d.heads.out_features == 11
    assert config.lr == 2e-4 and (config.beta1, config.beta2) == (0.5, 0.999) and config.loss == "bce"
    assert config.d_class_loss_on_fake and not (config.tac or config.d_spectral_norm or config.g_ema)
    assert get_preset("paper-128").steps == 50_000 and get_preset("paper-128").batch_size == 100
    std = torch.cat([m.weight.flatten() for m in convs]).std()
    assert 0.018 < std < 0.022  # N(0, 0.02) init


@pytest.mark.parametrize("overrides", [
    {"d_spectral_norm": True}, {"loss": "hinge"}, {"tac": True, "d_class_loss_on_fake": False},
    {"diff_augment": ("color", "translation", "cutout")}, {"d_noise": 0.1},
    {"g_upsample": "nearest", "g_class_norm": True},
])  # fmt: skip
def test_each_option_builds_and_gets_gradients(overrides):
    from workers.augment import diff_augment

    config = small(16, num_classes=4, **overrides)
    g, d = Generator(config), Discriminator(config)
    labels = torch.tensor([0, 1, 2, 3])
    fake = g(torch.randn(4, config.z_dim), labels)
    augmented = diff_augment(fake, config.diff_augment) if config.diff_augment else fake
    judged = d(augmented)
    assert (judged.twin is not None) == config.tac
    generator_loss(judged, labels, config).backward()
    assert g.project.weight.grad.abs().sum() > 0


def test_g_ema_keeps_an_exponential_average_of_the_generator_weights_and_samples_from_it():
    from workers.step import GAN, draw_batch, train_step

    torch.manual_seed(0)
    config = small(16, num_classes=4, g_ema=0.9)
    gan = GAN.build(config, torch.device("cpu"))
    expected = [p.detach().clone() for p in gan.generator.parameters()]  # the average starts at G's weights
    images, labels = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8), torch.arange(16) % 4
    rng = torch.Generator().manual_seed(0)
    for _ in range(3):
        train_step(gan, draw_batch(images, labels, 8, config.z_dim, 4, rng))
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, gan.generator.parameters())]
    for mine, want, current in zip(gan.averaged.model.parameters(), expected, gan.generator.parameters()):
        torch.testing.assert_close(mine, want)
    assert any(not torch.equal(a, g) for a, g in zip(gan.averaged.model.parameters(), gan.generator.parameters()))
    assert gan.sampler() is gan.averaged.model
    assert GAN.build(small(16, num_classes=4), torch.device("cpu")).averaged is None  # off by default


def test_d_class_loss_on_fake_adds_the_fakes_class_loss_to_d_and_only_then():
    torch.manual_seed(0)
    real = Judgement(source=torch.randn(6), classes=torch.randn(6, 4), twin=None)
    fake = Judgement(source=torch.randn(6), classes=torch.randn(6, 4), twin=None)
    real_labels, fake_labels = torch.randint(0, 4, (6,)), torch.randint(0, 4, (6,))
    with_fake = discriminator_loss(real, real_labels, fake, fake_labels, small(16, num_classes=4))
    without = discriminator_loss(real, real_labels, fake, fake_labels, small(16, num_classes=4, d_class_loss_on_fake=False))
    torch.testing.assert_close(with_fake - without, F.cross_entropy(fake.classes, fake_labels))
    assert with_fake - without > 0


def test_diff_augment_keeps_shape_changes_images_and_passes_gradients():
    from workers.augment import diff_augment

    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_()
    for policy in ("color", "translation", "cutout"):
        torch.manual_seed(0)
        out = diff_augment(x, (policy,))
        assert out.shape == x.shape and not torch.equal(out, x), policy
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, policy
        x.grad = None
    cut = diff_augment(torch.ones(4, 3, 16, 16), ("cutout",))
    zeroed = (cut == 0).float().mean(dim=(1, 2, 3))
    assert (zeroed > 0).all() and (zeroed <= 0.25).all()  # a square of half the side, part may fall outside


def test_spectral_norm_bounds_each_weight():
    config = small(16, num_classes=4, d_spectral_norm=True)
    d = Discriminator(config)
    for _ in range(10):  # power iterations converge in training mode
        d(torch.randn(2, 3, 16, 16))
    conv = next(m for m in d.modules() if isinstance(m, torch.nn.Conv2d))
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("field,value", [("image_size", 48), ("image_size", 4), ("num_classes", 0),
                                         ("d_dropout", 1.0), ("g_widths", (0, 4, 4)), ("loss", "wgan"),
                                         ("diff_augment", ("flip",)), ("d_strides", (2, 2)), ("tac", True),
                                         ("precision", "fp16")])  # fmt: skip
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        GANConfig(**{field: value})


def test_configs_written_before_presets_still_build_the_same_model():
    old = {"image_size": 32, "channels": 3, "num_classes": 10, "z_dim": 64, "g_width": 16, "d_width": 16,
           "g_upsample": "nearest", "g_class_norm": True, "d_batchnorm": False, "d_dropout": 0.0,
           "d_class_loss_on_fake": False, "g_class_weight": 1.0, "g_ema": 0.98, "lr": 1e-3, "beta1": 0.5,
           "beta2": 0.999}  # fmt: skip
    # The same model; such a run goes on training in fp32 at lr 1e-3, as it began (cpu-32 now
    # says auto and 5e-4).
    config = GANConfig.from_dict(old)
    assert config == dataclasses.replace(get_preset("cpu-32").gan, precision="fp32", lr=1e-3)
    # Built, it is the model the preset builds: the same parameters, the same images.
    torch.manual_seed(0)
    built, preset = Generator(config), Generator(dataclasses.replace(get_preset("cpu-32").gan, num_classes=10))
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in preset.state_dict().items()}
    preset.load_state_dict(built.state_dict())
    noise, labels = torch.randn(4, config.z_dim), torch.tensor([0, 3, 6, 9])
    assert torch.equal(built.eval()(noise, labels), preset.eval()(noise, labels))


def _judgement(source, classes):
    return Judgement(source, classes, None)


def test_losses_work_on_logits_not_probabilities():
    config = GANConfig()
    confident = torch.tensor([8.0, 8.0])
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0, 1])
    # A D that is confidently right has a near-zero loss; one that is confidently wrong, a large one.
    assert discriminator_loss(_judgement(confident, logits), labels, _judgement(-confident, logits), labels, config) < 0.01
    assert discriminator_loss(_judgement(-confident, logits), 1 - labels, _judgement(confident, logits), 1 - labels, config) > 30
    expected = F.binary_cross_entropy_with_logits(confident, torch.ones(2)) + F.cross_entropy(logits, labels)
    assert torch.allclose(generator_loss(_judgement(confident, logits), labels, config), expected)
    # Softmax before cross-entropy (a known bug in ports) would flatten this gradient.
    assert generator_loss(_judgement(confident, logits), 1 - labels, config) > 9


def test_hinge_and_tac_losses():
    hinge = GANConfig(loss="hinge")
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0, 1])
    real, fake = _judgement(torch.tensor([2.0, 0.5]), logits), _judgement(torch.tensor([-3.0, 0.0]), logits)
    # relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1]: means 0.25 + 0.5, plus the (near-zero) class loss
    assert discriminator_loss(real, labels, fake, labels, hinge) == pytest.approx(0.75, abs=1e-3)
    assert generator_loss(fake, labels, hinge) == pytest.approx(1.5, abs=1e-3)  # -mean(fake source)

    tac = GANConfig(tac=True, d_class_loss_on_fake=False)
    twin_right = Judgement(torch.zeros(2), logits, logits)
    twin_wrong = Judgement(torch.zeros(2), logits, logits.flip(1))
    # G gains when the twin cannot tell its fakes' classes; D gains when it can.
    assert generator_loss(twin_wrong, labels, tac) < generator_loss(twin_right, labels, tac)
    assert discriminator_loss(twin_right, labels, twin_right, labels, tac) < discriminator_loss(
        twin_right, labels, twin_wrong, labels, tac)  # fmt: skip


def test_class_loss_gradient_reaches_the_generator():
    """Through the class logits alone: D's "real" logit is cut from the graph, so every bit of
    gradient G gets comes from the class loss; a generator loss without it would give none.
    And it points the right way: a small step of G lowers the class loss."""
    torch.manual_seed(0)
    config = small(32, num_classes=4)
    g, d = Generator(config), Discriminator(config)
    labels, noise = torch.tensor([0, 1, 2, 3]), torch.randn(4, config.z_dim)

    def class_loss_only():
        judged = d(g(noise, labels))
        return generator_loss(Judgement(judged.source.detach(), judged.classes, None), labels, config)

    before = class_loss_only()
    before.backward()
    grads = [p.grad for p in g.parameters()]
    assert g.project.weight.grad is not None and g.project.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for param, grad in zip(g.parameters(), grads):
            if grad is not None:
                param -= 1e-3 * grad
    assert class_loss_only().item() < before.item()

def test_rendering_many_images_runs_the_generator_in_bounded_chunks_with_the_same_images(monkeypatch):
    from workers import images

    generator = Generator(get_preset("cpu-32").gan).eval()
    whole = images.generate(generator, 3, 10, seed=5)
    passes = []
    generator.register_forward_hook(lambda module, args, out: passes.append(len(args[0])))
    monkeypatch.setattr(images, "RENDER_CHUNK_PIXELS", 3 * 32 * 32)  # 3 images of 32 px a pass
    chunked = images.generate(generator, 3, 10, seed=5)
    assert passes == [3, 3, 3, 1]
    assert torch.equal(chunked, whole) and chunked.shape == (10, 3, 32, 32)


def test_rendering_stops_between_passes_once_abandoned(monkeypatch):
    """A served request whose client left stops before the generator's next pass, not only
    before its next label (ensemble/serve/app.py asks its cancellation event)."""
    from workers import images

    generator = Generator(get_preset("cpu-32").gan).eval()
    passes = []
    generator.register_forward_hook(lambda module, args, out: passes.append(len(args[0])))
    monkeypatch.setattr(images, "RENDER_CHUNK_PIXELS", 3 * 32 * 32)
    with pytest.raises(images.Abandoned, match="stopped after 6 of 10 images"):
        images.generate(generator, 3, 10, seed=5, abandoned=lambda: len(passes) == 2)
    assert passes == [3, 3]


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_the_projection_head_judges_an_image_by_its_class_and_learns(spectral_norm):
    config = small(32, num_classes=4, d_projection=True, d_spectral_norm=spectral_norm, d_batchnorm=False,
                   d_dropout=0.0)  # fmt: skip
    torch.manual_seed(0)
    g, d = Generator(config), Discriminator(config)
    images = g(torch.randn(3, config.z_dim), torch.tensor([0, 1, 2]))
    with torch.no_grad():  # a trained embedding: classes differ
        (d.projection.parametrizations.weight.original if spectral_norm else d.projection.weight).normal_()
    d.eval()  # spectral norm's power iteration would move the weights between the two calls
    as_given, as_other = d(images, torch.tensor([0, 1, 2])), d(images, torch.tensor([3, 3, 3]))
    assert not torch.allclose(as_given.source, as_other.source)  # "real" is judged per class
    assert torch.equal(as_given.classes, as_other.classes)  # the auxiliary classifier is not
    with pytest.raises(ValueError, match="labels"):
        d(images)
    loss = generator_loss(as_given, torch.tensor([0, 1, 2]), config)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.projection.parameters())


def test_minibatch_spread_sees_near_copies_and_keeps_groups_apart():
    from workers.model import minibatch_spread

    copies, varied = torch.ones(4, 6), torch.randn(4, 6)
    out = minibatch_spread(torch.cat([copies, varied]), group=4)
    assert out.shape == (8, 7) and torch.equal(out[:, :6], torch.cat([copies, varied]))
    assert torch.all(out[:4, 6] == 0) and torch.all(out[4:, 6] > 0.3)  # two groups: the copies' and the others'
    assert minibatch_spread(torch.randn(6, 3), group=4)[:, 3].unique().numel() == 2  # groups of 3 divide 6
    config = small(32, num_classes=3, d_minibatch_std=4, d_batchnorm=False, d_dropout=0.0)
    judged = Discriminator(config)(torch.randn(8, 3, 32, 32))
    assert judged.source.shape == (8,)
    with pytest.raises(ValueError, match="group size"):
        small(32, d_minibatch_std=1)
