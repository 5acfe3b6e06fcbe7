from __future__ import annotations

import logging

import pytest

from workers.datasets.drawing import render_class

FAKE_GPUS = 4


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster for the whole session: 2 CPUs and 4 fake GPUs.

    Ray's GPU resources are a scheduling promise only, so tasks that ask for GPUs are
    scheduled against these 4 and then train on the CPU (torch finds no CUDA here).
    The coordinator reuses this cluster because the test process is already connected.
    """
    import ray

    # address="local": a cluster of its own even where `ray start` left /tmp/ray/ray_current_cluster
    # behind (ray.init() would attach to that one).
    ray.init(address="local", num_cpus=2, num_gpus=FAKE_GPUS, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture
def image_folder(tmp_path):
    """A small real image folder: 4 classes of built-in images saved as PNG files."""
    from PIL import Image

    root = tmp_path / "images"
    for class_index, label in enumerate([3, 40, 417, 901]):
        folder = root / f"class_{class_index}"
        folder.mkdir(parents=True)
        for i, image in enumerate(render_class(label, 12)):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return root
