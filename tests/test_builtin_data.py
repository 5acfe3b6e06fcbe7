import torch

from workers.datasets import BuiltinDataset, open_dataset
from workers.datasets.builtin import CLASS_NAMES
from workers.datasets.palette import NUM_CLASSES
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
    # The 10 classes of one split and some of other splits: an image is on average closer
    # to the other images of its class than to those of any other class, and the nearest
    # class mean names every image's class.
    labels = list(range(410, 420)) + [310, 510, 40, 940]
    images = {label: render_class(label, 64).float().flatten(1) for label in labels}

    def mean_distance(a, b):  # mean absolute pixel difference over all pairs, 0-255 units
        return torch.cdist(a, b, p=1).div(a.shape[1])

    for label, x in images.items():
        pairs = mean_distance(x, x)
        within = pairs[~torch.eye(len(x), dtype=torch.bool)].mean()
        nearest_other = min(mean_distance(x, images[other]).mean() for other in labels if other != label)
        assert nearest_other > 1.2 * within, (label, float(nearest_other), float(within))
    means = torch.stack([images[label].mean(0) for label in labels])
    for i, label in enumerate(labels):
        assert (torch.cdist(images[label], means).argmin(1) == i).all(), label


def test_dataset_loads_a_split_with_local_labels():
    data = open_dataset("builtin").load_classes([410, 411, 412], 32)
    assert isinstance(open_dataset("builtin"), BuiltinDataset)
    n = BuiltinDataset.images_per_class
    assert data.images.shape == (3 * n, 3, 32, 32)
    assert data.labels.tolist() == [0] * n + [1] * n + [2] * n
    assert torch.equal(data.images[n : 2 * n], render_class(411, n))
