import pytest

from ensemble.errors import EnsembleError
from ensemble.planning import default_splits, plan_splits


@pytest.mark.parametrize("classes,splits", [(1000, 100), (1000, 1), (1000, 1000), (12, 4), (10, 5)])
def test_plan_partitions_classes_into_equal_contiguous_splits(classes, splits):
    plan = plan_splits(classes, splits)
    assert len(plan) == splits
    assert [c for split in plan for c in split] == list(range(classes))
    assert {len(split) for split in plan} == {classes // splits}
    assert all(split == list(range(split[0], split[0] + len(split))) for split in plan)


def test_imagenet_plan_puts_417_in_split_41_as_local_7():
    plan = plan_splits(1000, 100)
    assert plan[41] == list(range(410, 420))
    assert plan[41].index(417) == 7


@pytest.mark.parametrize("splits,expected", [(7, "does not divide"), (0, "between 1 and 1000"),
                                             (-3, "between 1 and 1000"), (1001, "between 1 and 1000")])
def test_bad_split_counts_are_refused_with_a_remedy(splits, expected):
    with pytest.raises(EnsembleError, match=expected):
        plan_splits(1000, splits)


def test_non_divisor_error_suggests_divisors():
    with pytest.raises(EnsembleError) as info:
        plan_splits(1000, 7)
    suggested = [int(x) for x in str(info.value).split("try one of ")[1].split(", ")]
    assert suggested and all(1000 % d == 0 for d in suggested)


@pytest.mark.parametrize("classes,per_split,expected", [
    (1000, 10, 100), (10, 10, 1), (100, 10, 10), (10, 5, 2), (20, 5, 4), (1000, 5, 200),
    (7, 5, 1),    # prime: one split of 7 (7/5 off by 1.4x) rather than 7 of one class (5x)
    (37, 10, 1),  # likewise: one split of 37 (3.7x), not 37 of one class (10x)
    (12, 5, 2),   # 6 per split (1.2x) beats 4 per split (1.25x)
    (1, 5, 1), (3, 5, 1),
])  # fmt: skip
def test_default_splits_come_nearest_the_recipes_classes_per_split(classes, per_split, expected):
    splits = default_splits(classes, per_split)
    assert splits == expected
    assert len(plan_splits(classes, splits)) == splits  # always a valid plan


def test_default_splits_prefer_smaller_splits_on_a_tie():
    # 8 classes at 4 per split: 2 splits of 4 exactly; at ~2.83 (between 2 and 4, ratio ~1.41 to
    # both): 4 splits of 2 rather than 2 of 4
    assert default_splits(8, 4) == 2
    assert default_splits(8, 8 ** 0.5) == 4
