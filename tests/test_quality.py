"""The split classifier, the measures built on it, and the verdicts they give: a collapsed
generator is flagged collapsed, a healthy one is not, copies of training images are flagged
memorised. No Ray here (tests/test_evaluate.py runs the command on a real run)."""
import pytest
import torch

from workers.datasets import load_split_images
from workers.quality.evaluation import ClassEvaluation, evaluate_classes, verdict
from workers.quality.measures import ms_ssim_scales
from workers.quality.verdicts import COLLAPSED, DIVERSITY_FLOOR, LOW_ACCURACY, OK, guard_verdict
from manifests.tables.evaluation import MEMORISED
from workers.quality.yardstick import GUARD_SAMPLES, held_out_mask, load_or_train_yardstick, to_input
from workers.quality.measures import quality_score

CPU = torch.device("cpu")
CLASSES = list(range(410, 420))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Split 41's real images and its classifier, trained once for the module."""
    torch.set_num_threads(1)
    data = load_split_images("builtin", CLASSES, 32)
    split_dir = tmp_path_factory.mktemp("split")
    yardstick = load_or_train_yardstick(split_dir, data.images, data.labels, 10, seed=41, device=CPU, steps=60)
    return data, yardstick, split_dir


def _of(data, yardstick, label, held_out):
    mask = (data.labels == label) & (yardstick.held_out if held_out else ~yardstick.held_out)
    return data.images[mask]


def test_the_held_out_share_is_a_tenth_of_each_class_and_fixed_by_the_seed():
    labels = torch.arange(3).repeat_interleave(50)
    mask = held_out_mask(labels, seed=1)
    assert [int(mask[labels == k].sum()) for k in range(3)] == [5, 5, 5]
    assert torch.equal(mask, held_out_mask(labels, seed=1)) and not torch.equal(mask, held_out_mask(labels, seed=2))
    assert held_out_mask(torch.tensor([0, 1, 1]), seed=0).tolist().count(True) == 1  # a lone image is never held out


def test_the_classifier_recognises_held_out_real_images_and_is_kept_with_the_split(split):
    data, yardstick, split_dir = split
    assert all(a is not None and a >= 0.9 for a in yardstick.real_accuracy), yardstick.real_accuracy
    assert (split_dir / "classifier.safetensors").is_file()
    # Loaded back rather than trained again: same weights, and the caller's random stream untouched.
    state = torch.get_rng_state()
    again = load_or_train_yardstick(split_dir, data.images, data.labels, 10, seed=41, device=CPU, steps=60)
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(again.model.state_dict().values(), yardstick.model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(again.held_out, yardstick.held_out)


def test_other_images_train_a_new_classifier(split, tmp_path):
    data, yardstick, split_dir = split
    (tmp_path / "classifier.safetensors").write_bytes((split_dir / "classifier.safetensors").read_bytes())
    other = load_split_images("builtin", list(range(0, 10)), 32)
    retrained = load_or_train_yardstick(tmp_path, other.images, other.labels, 10, seed=41, device=CPU, steps=60)
    assert not torch.equal(retrained.model.head.weight, yardstick.model.head.weight)


def test_the_guard_tells_a_collapsed_generator_from_a_healthy_one(split):
    data, yardstick, _ = split
    scores = {}
    for label in range(10):
        real = to_input(_of(data, yardstick, label, held_out=False)[:GUARD_SAMPLES])
        collapsed = real[:1].expand(GUARD_SAMPLES, -1, -1, -1)  # what a generator that ignores its noise makes
        scores[label] = (yardstick.score(real, label), yardstick.score(collapsed, label))
    for label, (real, collapsed) in scores.items():
        assert guard_verdict(real.accuracy, yardstick.real_accuracy[label], real.diversity, real.distinctness) == OK
        assert real.diversity > 0.7 and collapsed.diversity < 0.01 and collapsed.distinctness < 0.2
        assert guard_verdict(1.0, yardstick.real_accuracy[label], collapsed.diversity, collapsed.distinctness) == COLLAPSED
    wrong = to_input(_of(data, yardstick, 3, held_out=False)[:32])  # class 3's images, asked for class 0
    score = yardstick.score(wrong, 0)
    assert score.accuracy < 0.1 and guard_verdict(score.accuracy, yardstick.real_accuracy[0], 1.0, 1.0) == LOW_ACCURACY
    healthy = quality_score([real for real, _ in scores.values()])
    assert healthy > quality_score([collapsed for _, collapsed in scores.values()])


def test_partial_collapse_is_caught_where_new_real_images_pass(split):
    """What bench/guard_calibration.py measures on four kinds of real images, here on the
    built-in split: samples that vary less than half as much as the class, or repeat a few
    pictures (however different those are), are collapsed; real images that are not the
    guard's references are ok."""
    data, yardstick, _ = split
    generator = torch.Generator().manual_seed(0)
    for label in range(10):
        not_references = data.labels == label
        not_references[yardstick.references[label]] = False
        pool = data.images[not_references]
        real = pool[torch.randperm(len(pool), generator=generator)[:GUARD_SAMPLES]]
        mean = pool.float().mean(0, keepdim=True)
        samples = {"real": real, "shrunk": (mean + 0.4 * (real.float() - mean)).round().to(torch.uint8)}
        for k in (2, 4, 8):
            copies = real[:k].repeat(GUARD_SAMPLES // k, 1, 1, 1).float()
            samples[f"repeat-{k}"] = (copies + torch.randint(-3, 4, copies.shape, generator=generator)).clamp(0, 255).to(torch.uint8)
        verdicts = {}
        for name, images in samples.items():
            s = yardstick.score(to_input(images), label)
            verdicts[name] = guard_verdict(s.accuracy, yardstick.real_accuracy[label], s.diversity, s.distinctness)
        assert verdicts == {"real": OK, **{name: COLLAPSED for name in samples if name != "real"}}, (label, verdicts)


def test_evaluation_flags_collapse_and_memorisation_and_passes_new_images(split):
    data, yardstick, _ = split
    healthy = [_of(data, yardstick, k, held_out=True) for k in range(10)]  # real images it never trained on
    collapsed = [images[:1].expand(20, -1, -1, -1).clone() for images in healthy]
    copies = [_of(data, yardstick, k, held_out=False)[:20] for k in range(10)]
    verdicts = {}
    for name, samples in (("healthy", healthy), ("collapsed", collapsed), ("copies", copies)):
        rows, fid, kid = evaluate_classes(yardstick, data.images, data.labels, samples, seed=0)
        ceiling = max(r.real_ms_ssim for r in rows)
        verdicts[name] = {verdict(r, ceiling) for r in rows}
        if name == "healthy":
            assert all(r.accuracy >= 0.9 and r.diversity > 0.7 and 0.7 < r.novelty < 1.5 for r in rows), rows
            assert all(abs(r.ms_ssim - r.real_ms_ssim) < 0.1 for r in rows)
            healthy_fid, healthy_kid = fid, kid
        if name == "collapsed":
            assert all(r.ms_ssim > 0.99 and r.diversity < DIVERSITY_FLOOR for r in rows)
    assert verdicts == {"healthy": {OK}, "collapsed": {COLLAPSED}, "copies": {MEMORISED}}
    # Split-level FID/KID exist; in a classifier's feature space they mostly weigh the class
    # means, so collapse inside a class is for MS-SSIM and diversity to catch.
    assert healthy_fid >= 0 and healthy_kid is not None


def test_the_paper_ms_ssim_criterion_alone_flags_collapse():
    row = ClassEvaluation(local_label=0, accuracy=1.0, real_accuracy=1.0, ms_ssim=0.5, real_ms_ssim=0.2,
                          diversity=0.9, fid=None, novelty=1.0)  # fmt: skip
    assert verdict(row, ms_ssim_ceiling=0.25) == COLLAPSED
    assert verdict(row, ms_ssim_ceiling=0.47) == OK  # within the margin for sampling noise
    assert verdict(row, ms_ssim_ceiling=0.6) == OK


@pytest.mark.parametrize(("side", "scales"), [(32, 3), (64, 4), (128, 5), (256, 5), (16, 2)])
def test_ms_ssim_uses_as_many_scales_as_the_side_allows(side, scales):
    assert ms_ssim_scales(side) == scales
