import torch

from workers.datasets import BuiltinDataset, open_dataset
from workers.datasets.builtin import CLASS_NAMES, NUM_CLASSES
from workers.datasets.drawing import render_class


def test_there_are_1000_uniquely_named_classes():
    assert len(CLASS_NAMES) == NUM_CLASSES == 1000
    assert len(set(CLASS_NAMES)) == 1000
    assert CLASS_NAMES[417] == "violet bar on maroon window"


def test_rendering_is_deterministic_and_32x32_rgb_uint8():
    a = render_class(417, 8)
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, render_class(417, 8))
    assert not torch.equal(a, render_class(417, 8, first_index=8))


def test_images_vary_inside_a_class():
    images = render_class(123, 32).float()
    pairwise = (images[:, None] - images[None]).abs().mean(dim=(2, 3, 4))
    off_diagonal = pairwise[~torch.eye(32, dtype=torch.bool)]
    assert off_diagonal.min() > 1.0  # no two images alike (mean abs difference in 0-255 units)


def test_classes_differ_more_between_than_within():
    # Mean images of the 10 classes of one split, and of neighbouring splits, are far apart
    # compared with how far single images stray from their own class mean.
    labels = list(range(410, 420)) + [310, 510, 40, 940]
    images = {label: render_class(label, 64).float() for label in labels}
    means = {label: x.mean(0) for label, x in images.items()}
    within = max((x - means[label]).abs().mean(dim=(1, 2, 3)).mean() for label, x in images.items())
    between = min((means[a] - means[b]).abs().mean() for a in labels for b in labels if a < b)
    assert between > 0.3 * within and between > 3.0


def test_dataset_loads_a_split_with_local_labels():
    data = open_dataset("builtin").load_classes([410, 411, 412], 32)
    assert isinstance(open_dataset("builtin"), BuiltinDataset)
    n = BuiltinDataset.images_per_class
    assert data.images.shape == (3 * n, 3, 32, 32)
    assert data.labels.tolist() == [0] * n + [1] * n + [2] * n
    assert torch.equal(data.images[n : 2 * n], render_class(411, n))
