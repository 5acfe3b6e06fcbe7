"""The data index: an image folder is listed once per launch; a split reads only its own
classes' rows, notices files changed under it, and a relaunch says what changed."""
import shutil

import pytest
from PIL import Image

from ensemble.planning import plan_splits
from ensemble.run_spec import new_spec
from manifests.run_dir import RunDir
from manifests.storage import location
from manifests.tables import data_index
from manifests.tables.data_index import DataIndex, changes
from manifests.tables.manifest import SplitRecord
from tests.helpers import assert_one_line_error, invoke
from workers.datasets import DatasetError, SplitFolder, load_split_images, open_dataset


def indexed(image_folder, tmp_path) -> tuple[object, object]:
    """The folder's dataset, and its index written as a launch writes it."""
    dataset = open_dataset(str(image_folder))
    path = location(tmp_path / "data-index.parquet")
    dataset.index.write(path)
    return dataset, path


def test_a_split_reads_its_classes_from_the_index_without_the_other_folders(image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(data_index, "ROW_GROUP_ROWS", 12)  # one class per row group, as ImageNet's 12 per group
    dataset, path = indexed(image_folder, tmp_path)
    import pyarrow.parquet as pq

    with data_index._opened(path) as source:
        parquet = pq.ParquetFile(source)
        assert parquet.num_row_groups == 4 and data_index._groups_of(parquet, [2]) == [2]

    for other in ("class_0", "class_1", "class_3"):
        shutil.rmtree(image_folder / other)  # a split needs nothing but its own folders
    split = SplitFolder(path, [2])
    assert split.index.class_indices == [2] and len(split.index) == 12
    assert split.fingerprint([2]) == dataset.fingerprint([2])
    data = split.load_classes([2], 16)
    assert data.images.shape == (12, 3, 16, 16) and data.labels.tolist() == [0] * 12
    with pytest.raises(KeyError):
        split.index.files(1)


def test_a_split_refuses_to_decode_files_changed_after_the_listing(image_folder, tmp_path):
    _, path = indexed(image_folder, tmp_path)
    Image.new("RGB", (8, 8), "red").save(image_folder / "class_1" / "late.png")
    (image_folder / "class_1" / "000.png").unlink()
    with pytest.raises(DatasetError, match=r"class_1 changed after the launch listed it \(1 file\(s\) added, 1 removed"):
        load_split_images(str(image_folder), [0, 1], 16, cache_dir=tmp_path / "split", index=path)
    assert not (tmp_path / "split").exists()  # nothing decoded, nothing cached
    data = load_split_images(str(image_folder), [2, 3], 16, cache_dir=tmp_path / "other", index=path)
    assert data.images.shape[0] == 24  # splits of unchanged classes go on


def test_changes_names_added_removed_and_changed_files_and_classes(image_folder):
    before = open_dataset(str(image_folder)).index
    assert not changes(before, open_dataset(str(image_folder)).index)
    Image.new("RGB", (8, 8), "red").save(image_folder / "class_0" / "new.png")
    (image_folder / "class_3" / "001.png").write_bytes((image_folder / "class_3" / "002.png").read_bytes())
    found = changes(before, open_dataset(str(image_folder)).index)
    assert (found.files_added, found.files_removed, found.files_changed) == (1, 0, 1)
    assert found.describe() == "1 file(s) added, 1 file(s) changed in 2 class folder(s) (class_0, class_3)"
    shutil.copytree(image_folder / "class_0", image_folder / "class_9")
    found = changes(before, open_dataset(str(image_folder)).index)
    assert found.classes_added == ["class_9"] and found.describe() == "1 class folder(s) added (class_9)"


def test_the_index_reads_back_on_s3_by_row_group(s3_prefix, image_folder, monkeypatch):
    monkeypatch.setattr(data_index, "ROW_GROUP_ROWS", 12)
    dataset = open_dataset(str(image_folder))
    path = location(f"{s3_prefix}/data-index.parquet")
    dataset.index.write(path)
    split = DataIndex.read(path, [1, 3])
    assert split.class_indices == [1, 3] and split.files(3).names == dataset.index.files(3).names
    assert DataIndex.read(path).table.equals(dataset.index.table)


def folder_run(tmp_path, image_folder) -> RunDir:
    """A run over the image folder, planned and indexed as a launch leaves it before training."""
    dataset = open_dataset(str(image_folder))
    run = RunDir(tmp_path / "run")
    spec = new_spec(data=str(image_folder), splits=2, num_classes=4, steps=12, batch_size=8, seed=None,
                    checkpoint_every=6)  # fmt: skip
    run.write_spec(spec.to_dict())
    dataset.index.write(run.data_index_path)
    run.write_manifest([SplitRecord(split=i, classes=c, class_names=[dataset.class_names[k] for k in c],
                                    class_ids=[dataset.class_ids[k] for k in c], total_steps=12)
                        for i, c in enumerate(plan_splits(4, 2))])  # fmt: skip
    return run


def test_a_relaunch_refuses_changed_classes_and_names_them_leaving_the_run_as_it_was(tmp_path, image_folder):
    run = folder_run(tmp_path, image_folder)
    before = {p: p.read_bytes() for p in sorted(run.root.path.rglob("*")) if p.is_file()}
    (image_folder / "class_5").mkdir()
    shutil.copy(image_folder / "class_0" / "000.png", image_folder / "class_5" / "x.png")
    result = invoke("launch", "--run", run.root, "--reindex")
    assert_one_line_error(result, "1 class folder(s) added (class_5)", "a run's classes are fixed")
    shutil.rmtree(image_folder / "class_3")
    result = invoke("launch", "--run", run.root)
    assert_one_line_error(result, "1 class folder(s) added (class_5); 1 class folder(s) removed (class_3)")
    assert {p: p.read_bytes() for p in sorted(run.root.path.rglob("*")) if p.is_file()} == before


def test_a_damaged_index_is_named_and_a_deleted_one_is_listed_again(tmp_path, image_folder):
    run = folder_run(tmp_path, image_folder)
    whole = run.data_index_path.read_bytes()
    run.data_index_path.write_bytes(whole[: len(whole) // 2])
    assert_one_line_error(invoke("launch", "--run", run.root), "data index", "is unreadable", "delete it")
    run.data_index_path.unlink()
    listed = RunDir(run.root)
    from ensemble.launching.coordinator import LaunchRequest, _listed_again
    from ensemble.launching.listener import QuietListener
    from ensemble.run_spec import RunSpec

    spec = RunSpec.from_dict(listed.read_spec())
    again = _listed_again(LaunchRequest(run_dir=run.root), listed, spec, QuietListener())
    copy = location(tmp_path / "as-launched.parquet")
    copy.write_bytes(whole)
    assert again is not None and again.table.equals(DataIndex.read(copy).table)  # to be written by the launch
