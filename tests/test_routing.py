import random

import pytest

from ensemble.errors import EnsembleError
from ensemble.planning import plan_splits
from ensemble.routing import Router
from tests.helpers import records_for
from workers.datasets.builtin import CLASS_NAMES


def test_every_label_routes_to_the_split_that_holds_it():
    router = Router(records_for(plan_splits(1000, 100)))
    for label in range(1000):
        route = router.resolve(label)
        assert route.record.classes[route.local_label] == label
        assert route.class_name == CLASS_NAMES[label]
    route = router.resolve("417")
    assert (route.record.split, route.local_label) == (41, 7)


def test_routing_is_a_lookup_not_arithmetic():
    labels = list(range(1000))
    random.Random(0).shuffle(labels)
    plan = [sorted(labels[i : i + 10]) for i in range(0, 1000, 10)]
    router = Router(records_for(plan))
    for label in (0, 417, 999):
        route = router.resolve(label)
        assert route.record.split == next(i for i, c in enumerate(plan) if label in c)
        assert route.record.classes[route.local_label] == label


def test_labels_resolve_by_name_case_insensitively():
    router = Router(records_for(plan_splits(1000, 100)))
    assert router.resolve(CLASS_NAMES[417].upper()).global_label == 417
    assert router.resolve(f"  {CLASS_NAMES[5]} ").global_label == 5


@pytest.mark.parametrize("label,message", [("1000", "out of range"), ("-1", "out of range"),
                                           ("balloon", "no class is named"), ("", "no class is named")])
def test_unknown_labels_are_refused(label, message):
    with pytest.raises(EnsembleError, match=message):
        Router(records_for(plan_splits(1000, 100))).resolve(label)


def imagenet_records():
    from manifests.tables.manifest import SplitRecord
    from workers.datasets.folder import imagenet_class_names

    names = imagenet_class_names()
    ids = [f"n{1440764 + i:08d}" for i in range(1000)]  # stand-ins for the sorted WordNet ids
    return [SplitRecord(split=s, classes=c, class_names=[names[i] for i in c], class_ids=[ids[i] for i in c])
            for s, c in enumerate(plan_splits(1000, 100))]  # fmt: skip


def test_imagenet_labels_resolve_by_index_name_or_wordnet_id():
    router = Router(imagenet_records())
    for label in ("417", "balloon", "Balloon", "n01441181"):
        route = router.resolve(label)
        assert (route.global_label, route.class_name, route.record.split, route.local_label) == (417, "balloon", 41, 7)


def test_imagenet_names_that_the_wordnet_shares_are_told_apart():
    router = Router(imagenet_records())  # torchvision names the bird "crane bird" and the machine "crane"
    assert (router.resolve("crane bird").global_label, router.resolve("crane").global_label) == (134, 517)
