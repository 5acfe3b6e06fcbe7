import pytest
import torch
from PIL import Image

from workers.datasets import DatasetError, open_dataset


def test_class_index_is_sorted_folder_order(image_folder):
    (image_folder / "a_first").mkdir()
    Image.new("RGB", (5, 9), "red").save(image_folder / "a_first" / "x.jpg")
    dataset = open_dataset(str(image_folder))
    assert dataset.class_names == ["a_first", "class_0", "class_1", "class_2", "class_3"]


def test_any_size_and_mode_is_converted_and_corrupt_files_are_counted(image_folder):
    folder = image_folder / "class_1"
    Image.new("L", (50, 20), 128).save(folder / "gray.png")
    Image.new("P", (7, 7)).save(folder / "palette.gif")
    Image.new("RGBA", (64, 64), (0, 0, 255, 100)).save(folder / "alpha.png")
    Image.new("CMYK", (40, 40)).save(folder / "cmyk.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG not an image")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    data = open_dataset(str(image_folder)).load_classes([1, 3], 16)
    assert data.images.shape == (12 + 4 + 12, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.skipped == 1
    assert data.labels.tolist() == [0] * 16 + [1] * 12


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "no class subfolders"),
        (lambda root: (root / "f.txt").write_text("x") and root / "f.txt", "is a file"),
        (lambda root: (root / "d" / "c").mkdir(parents=True) or root / "d", "holds no image files"),
    ],
)
def test_bad_folders_are_refused_with_the_reason(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        open_dataset(str(make(tmp_path)))


def test_a_class_with_only_unreadable_images_is_refused(image_folder):
    folder = image_folder / "class_2"
    for f in folder.iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="no readable images in class folder"):
        open_dataset(str(image_folder)).load_classes([2], 16)
