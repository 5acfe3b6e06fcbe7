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


def test_real_images_without_a_preset_get_the_recipe_measured_on_real_folders(image_folder):
    from ensemble.run_spec import new_spec
    from workers.presets import REAL_IMAGES

    given = dict(splits=2, num_classes=4, steps=None, batch_size=None, seed=None, checkpoint_every=None)
    spec = new_spec(data=str(image_folder), **given)
    assert (spec.preset, spec.steps) == ("cpu-32", REAL_IMAGES.steps) == ("cpu-32", 6000)
    assert spec.gan["lr"] == 2.5e-4 and spec.gan["d_spectral_norm"] is True and spec.gan["g_mode_seeking"] == 0.2
    assert spec.gan["d_projection"] is True and spec.gan["g_mode_seeking_centred"] is True
    assert spec.gan["class_balanced"] is True and tuple(spec.gan["g_widths"]) == (96, 48, 24)
    # What the user says wins; an explicit preset takes that preset's own recipe.
    mine = new_spec(data=str(image_folder), **{**given, "steps": 100}, overrides={"lr": 1e-4})
    assert mine.steps == 100 and mine.gan["lr"] == 1e-4 and mine.gan["d_spectral_norm"] is True
    chosen = new_spec(data=str(image_folder), **given, preset="cpu-32")
    assert chosen.steps == 450 and chosen.gan["lr"] == 5e-4 and chosen.gan["d_spectral_norm"] is False
    builtin = new_spec(data=None, **{**given, "num_classes": 1000})
    assert builtin.steps == 450 and builtin.gan["d_spectral_norm"] is False


def test_splits_left_out_give_a_folder_5_classes_per_split_and_the_presets_10(image_folder):
    from ensemble.run_spec import new_spec

    given = dict(splits=None, steps=None, batch_size=None, seed=None, checkpoint_every=None)
    folder = new_spec(data=str(image_folder), num_classes=10, **given)
    assert folder.splits == 2 and folder.gan["num_classes"] == 5
    assert new_spec(data=str(image_folder), num_classes=10, preset="cpu-32", **given).splits == 1
    assert new_spec(data=None, num_classes=1000, **given).splits == 100  # the quickstart's run, as before
    assert new_spec(data=str(image_folder), num_classes=10, **{**given, "splits": 5}).splits == 5  # given: kept


def test_a_few_images_per_class_are_read_from_the_cache_without_the_rest(tmp_path):
    from workers.datasets.cache import cache_path, read_cache, write_cache
    from workers.datasets.loaded import LoadedImages

    images = torch.arange(15 * 3 * 4 * 4, dtype=torch.int32).remainder(251).to(torch.uint8).view(15, 3, 4, 4)
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 7)
    path = cache_path(tmp_path, 4)
    write_cache(path, "k", LoadedImages(images, labels, skipped=1))
    few = read_cache(path, "k", per_class=3)
    assert few.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2] and few.skipped == 1
    assert torch.equal(few.images, images[[0, 1, 2, 6, 7, 8, 9, 10]])
    assert torch.equal(read_cache(path, "k").images, images) and read_cache(path, "other", per_class=3) is None


def test_a_split_of_grey_images_is_shown_grey_and_trains_as_before(tmp_path, image_folder, one_thread):
    """A split whose real images are all grey gets generators that show grey in every file a
    sample is made from (latest and best); a colour split's do not. Training is untouched: in
    train mode the grey split's G still draws three channels of its own."""
    from tests.helpers import make_job, train_on_cpu
    from workers.checkpoints import load_generator
    from workers.images import generate

    grey = tmp_path / "grey"
    for folder in image_folder.iterdir():
        (grey / folder.name).mkdir(parents=True)
        for file in folder.iterdir():
            Image.open(file).convert("L").convert("RGB").save(grey / folder.name / file.name)
    shown, trained = {}, {}
    for name, data in (("grey", grey), ("colour", image_folder)):
        job = make_job(tmp_path / name, 20, data=str(data), classes=[0, 1, 2, 3], class_names=["a", "b", "c", "d"])
        result = train_on_cpu(job)
        for path in (result.generator_path, result.best_path):
            generator, _ = load_generator(path)
            images = generate(generator, local_label=1, count=8, seed=0)
            shown.setdefault(name, []).append(bool((images[:, :1] == images[:, 1:]).all()))
        with torch.no_grad():
            drawn = generator.train()(torch.randn(8, generator.config.z_dim), torch.ones(8, dtype=torch.long))
        trained[name] = bool((drawn[:, :1] == drawn[:, 1:]).all())
    assert shown == {"grey": [True, True], "colour": [False, False]}
    assert trained == {"grey": False, "colour": False}
