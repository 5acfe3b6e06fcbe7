import pytest

from ensemble.errors import EnsembleError
from ensemble.planning import default_splits, plan_splits, split_size_text


@pytest.mark.parametrize("classes,splits", [(1000, 100), (1000, 1), (1000, 1000), (12, 4), (10, 5), (1000, 7),
                                            (37, 7), (11, 2), (13, 12)])
def test_plan_partitions_classes_into_contiguous_splits_as_equal_as_can_be(classes, splits):
    plan = plan_splits(classes, splits)
    assert len(plan) == splits
    assert [c for split in plan for c in split] == list(range(classes))
    sizes = [len(split) for split in plan]
    # the first classes % splits splits hold one class more; even divisions as always
    assert sizes == [classes // splits + 1] * (classes % splits) + [classes // splits] * (splits - classes % splits)
    assert all(split == list(range(split[0], split[0] + len(split))) for split in plan)
    assert split_size_text(classes, splits) == (f"{min(sizes)}-{max(sizes)}" if classes % splits else f"{sizes[0]}")


def test_imagenet_plan_puts_417_in_split_41_as_local_7():
    plan = plan_splits(1000, 100)
    assert plan[41] == list(range(410, 420))
    assert plan[41].index(417) == 7


@pytest.mark.parametrize("splits,expected", [(0, "between 1 and 1000"), (-3, "between 1 and 1000"),
                                             (1001, "between 1 and 1000")])
def test_bad_split_counts_are_refused_with_a_remedy(splits, expected):
    with pytest.raises(EnsembleError, match=expected):
        plan_splits(1000, splits)


@pytest.mark.parametrize("classes,per_split,expected", [
    (1000, 10, 100), (10, 10, 1), (100, 10, 10), (10, 5, 2), (20, 5, 4), (1000, 5, 200),
    (7, 5, 1),    # one split of 7 (7/5 off by 1.4x) rather than two of 3.5 on average (1.43x)
    (37, 10, 4),  # a prime: 10, 9, 9 and 9 (1.08x), not one model of 37 (3.7x)
    (37, 5, 7), (11, 5, 2), (13, 5, 3),  # 6 and 5 of each split; 5, 4 and 4
    (12, 5, 2),   # 6 per split (1.2x) beats 4 per split (1.25x)
    (1, 5, 1), (3, 5, 1),
])  # fmt: skip
def test_default_splits_come_nearest_the_recipes_classes_per_split(classes, per_split, expected):
    splits = default_splits(classes, per_split)
    assert splits == expected
    assert len(plan_splits(classes, splits)) == splits  # always a valid plan


def test_default_splits_prefer_smaller_splits_on_a_tie():
    # 6 classes at 3 per split: 2 splits of 3 exactly; at ~2.45 (between 2 and 3, ratio ~1.22 to
    # both): 3 splits of 2 rather than 2 of 3
    assert default_splits(6, 3) == 2
    assert default_splits(6, 6 ** 0.5) == 3
