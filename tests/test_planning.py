import pytest

from ensemble.errors import EnsembleError
from ensemble.planning import plan_splits


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
