import pytest
import torch
import torch.nn.functional as F

from workers.config import GANConfig
from workers.losses import discriminator_loss, generator_loss
from workers.model import Discriminator, Generator


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("d_batchnorm,d_dropout", [(False, 0.0), (True, 0.5)])
def test_shapes_for_each_resolution(size, d_batchnorm, d_dropout):
    config = GANConfig(image_size=size, num_classes=10, d_batchnorm=d_batchnorm, d_dropout=d_dropout)
    g, d = Generator(config), Discriminator(config)
    images = g(torch.randn(2, config.z_dim), torch.tensor([0, 9]))
    assert images.shape == (2, 3, size, size)
    assert images.abs().max() <= 1.0
    source, classes = d(images)
    assert source.shape == (2,) and classes.shape == (2, 10)


@pytest.mark.parametrize("field,value", [("image_size", 48), ("image_size", 4), ("num_classes", 0),
                                         ("d_dropout", 1.0), ("g_width", 0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        GANConfig(**{field: value})


def test_losses_work_on_logits_not_probabilities():
    confident = torch.tensor([8.0, 8.0])
    logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    labels = torch.tensor([0, 1])
    # A D that is confidently right has a near-zero loss; one that is confidently wrong, a large one.
    assert discriminator_loss(confident, logits, labels, -confident, logits, labels) < 0.01
    assert discriminator_loss(-confident, logits, 1 - labels, confident, logits, 1 - labels) > 30
    expected = F.binary_cross_entropy_with_logits(confident, torch.ones(2)) + F.cross_entropy(logits, labels)
    assert torch.allclose(generator_loss(confident, logits, labels), expected)
    # Softmax before cross-entropy (a known bug in ports) would flatten this gradient.
    assert generator_loss(confident, logits, 1 - labels) > 9


def test_class_loss_gradient_reaches_the_generator():
    config = GANConfig(num_classes=4)
    g, d = Generator(config), Discriminator(config)
    labels = torch.tensor([0, 1, 2, 3])
    source, classes = d(g(torch.randn(4, config.z_dim), labels))
    generator_loss(source, classes, labels).backward()
    assert g.project.weight.grad.abs().sum() > 0
