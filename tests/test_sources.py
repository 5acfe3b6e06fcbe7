"""CIFAR-10/100 and MNIST from a torchvision root, ImageNet's layout, and the decode cache.

The CIFAR and MNIST files here are small fakes written in the real formats (pickled numpy
batches; big-endian idx files), since nothing may be downloaded.
"""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import RunsCode, write_mnist
from workers.datasets import DatasetError, load_split_images, normalise_spec, open_dataset
from workers.datasets.cache import cache_path


def write_cifar10(root, per_batch=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        labels = [int(x) for x in rng.integers(0, 10, per_batch)]
        data = np.stack([np.full(3072, 10 * label + i, dtype=np.uint8) for label in labels])
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data}, f, protocol=2)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, f, protocol=2)
    return root


def test_cifar10_loads_its_classes_by_name_and_only_the_requested_ones(tmp_path):
    dataset = open_dataset(f"cifar10:{write_cifar10(tmp_path)}")
    assert dataset.class_names[3] == "cat" and len(dataset.class_names) == 10
    data = dataset.load_classes([3, 5], 32)
    assert data.images.shape[1:] == (3, 32, 32) and data.images.dtype == torch.uint8
    # The fake's pixel value encodes its image: 10 * class + batch number. Every image of
    # classes 3 and 5 in the five batches, read back from the files, and no other.
    written = []
    for i in range(1, 6):
        with open(tmp_path / "cifar-10-batches-py" / f"data_batch_{i}", "rb") as f:
            written += [10 * label + i for label in pickle.load(f)[b"labels"] if label in (3, 5)]
    loaded = data.images[:, 0, 0, 0].tolist()
    assert sorted(loaded) == sorted(written) and len(loaded) > 0
    assert data.labels.tolist() == [0 if v // 10 == 3 else 1 for v in loaded]  # local labels follow the order asked


def test_mnist_becomes_rgb_at_the_model_size_from_plain_or_gzipped_files(tmp_path):
    for compress in (False, True):
        root = write_mnist(tmp_path / str(compress), compress=compress)
        dataset = open_dataset(f"mnist:{root}")
        assert dataset.class_names[7] == "7 - seven"
        data = dataset.load_classes([2, 7], 32)
        assert data.images.shape == (6, 3, 32, 32)
        assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
        assert torch.equal(data.images[0, 0], data.images[0, 2])  # gray in all three channels
        assert data.images[1].float().mean() == pytest.approx(140, abs=1)  # 7 * 20, resized


@pytest.mark.parametrize("kind,expected", [
    ("cifar10", r"CIFAR-10 not found: .*cifar-10-batches-py/data_batch_1 is missing \(download https://"),
    ("cifar100", r"CIFAR-100 not found: .*cifar-100-python/train is missing"),
    ("mnist", r"MNIST not found: .*MNIST/raw/train-images-idx3-ubyte is missing"),
])  # fmt: skip
def test_a_missing_torchvision_dataset_says_where_its_files_must_be(tmp_path, kind, expected):
    with pytest.raises(DatasetError, match=expected):
        open_dataset(f"{kind}:{tmp_path}")
    with pytest.raises(DatasetError, match="is not a folder"):
        open_dataset(f"{kind}:{tmp_path / 'nowhere'}")


def test_a_cifar_file_carrying_code_is_refused_without_running_it(tmp_path):
    root = write_cifar10(tmp_path)
    with open(root / "cifar-10-batches-py" / "data_batch_2", "wb") as f:
        pickle.dump({b"labels": RunsCode(tmp_path / "pwned")}, f)
    with pytest.raises(DatasetError, match="refused to load posix.system"):
        open_dataset(f"cifar10:{root}").load_classes([1], 32)
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_mnist_file_is_named(tmp_path):
    root = write_mnist(tmp_path)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:500])
    with pytest.raises(DatasetError, match="is truncated"):
        open_dataset(f"mnist:{root}").load_classes([1], 32)


def test_specs_are_normalised_to_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalise_spec("cifar10:data") == f"cifar10:{tmp_path}/data"
    assert normalise_spec("data") == f"{tmp_path}/data" and normalise_spec("builtin") == "builtin"


def imagenet_layout(root, images_per_class=0):
    """1000 WordNet-id folders; only the first two get images beyond one tiny placeholder."""
    for i in range(1000):
        folder = root / f"n{1440764 + i:08d}"
        folder.mkdir(parents=True)
        Image.new("RGB", (4, 4), (i % 256, 0, 0)).save(folder / "0.JPEG")
    return root


def test_the_imagenet_layout_gets_torchvisions_class_names_and_keeps_wordnet_ids(tmp_path):
    dataset = open_dataset(str(imagenet_layout(tmp_path / "train")))
    assert dataset.is_imagenet
    assert dataset.class_names[417] == "balloon" and dataset.class_names[0] == "tench"
    assert dataset.class_ids[0] == "n01440764" and len(dataset.class_ids) == 1000
    from torchvision.models import ResNet18_Weights  # the names are read without importing it: the same ones

    assert dataset.class_names == list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def test_other_folders_are_named_by_folder(image_folder):
    dataset = open_dataset(str(image_folder))
    assert not dataset.is_imagenet and dataset.class_names == dataset.class_ids == [f"class_{i}" for i in range(4)]


@pytest.mark.parametrize("make,message", [
    (lambda root: [Image.new("RGB", (4, 4)).save(root / f"{i}.jpg") for i in range(3)],
     "has no class subfolders; it holds 3 image files directly, expected .*/<class>/<image files>"),
    (lambda root: [(root / "train" / "a").mkdir(parents=True), (root / "val" / "a").mkdir(parents=True)],
     r"holds no image files .*looks like a dataset's top folder: pass --data .*/train"),
])  # fmt: skip
def test_a_wrong_layout_is_explained(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DatasetError, match=message):
        open_dataset(str(tmp_path))


def test_transparent_pixels_become_white(image_folder):
    folder = image_folder / "class_0"
    for f in folder.iterdir():
        f.unlink()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(folder / "clear.png")
    Image.new("LA", (8, 8), (0, 0)).save(folder / "clear-gray.png")
    data = open_dataset(str(image_folder)).load_classes([0], 8)
    assert (data.images == 255).all()


def count_decodes(monkeypatch) -> list[str]:
    """The image files the folder dataset decodes from now on."""
    from workers.datasets import folder

    decoded, real_decode = [], folder._decode

    def decode(path, image_size):
        decoded.append(path)
        return real_decode(path, image_size)

    monkeypatch.setattr(folder, "_decode", decode)
    return decoded


def test_decoded_images_are_cached_and_redecoded_when_the_data_changes(image_folder, tmp_path, monkeypatch):
    cache_dir = tmp_path / "split"
    first = load_split_images(str(image_folder), [1, 2], 16, cache_dir=cache_dir)
    cached = cache_path(cache_dir, 16).path
    assert cached.is_file()
    cached_inode = cached.stat().st_ino
    decoded = count_decodes(monkeypatch)
    again = load_split_images(str(image_folder), [1, 2], 16, cache_dir=cache_dir)
    assert decoded == [] and cached.stat().st_ino == cached_inode  # read from the cache: no decode, not rewritten
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)

    (image_folder / "class_1" / "broken.png").write_bytes(b"not a png")  # the data changed
    changed = load_split_images(str(image_folder), [1, 2], 16, cache_dir=cache_dir)
    assert changed.skipped == 1 and torch.equal(changed.images, first.images) and decoded
    assert cached.stat().st_ino != cached_inode  # rewritten for the new data
    decoded.clear()
    assert load_split_images(str(image_folder), [1, 2], 16, cache_dir=cache_dir).skipped == 1 and decoded == []

    cached.write_bytes(b"damaged")  # a damaged cache is decoded again, not trusted
    assert torch.equal(load_split_images(str(image_folder), [1, 2], 16, cache_dir=cache_dir).images, first.images)
