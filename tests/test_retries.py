"""Quality retries that change what failed (ensemble/launching/recipes.py): the ladder each
verdict climbs, the recipe a retry's job trains with, the mode-seeking term a collapse turns
on (workers/losses.py, paired batches in workers/step.py), and a retry with another recipe
starting afresh where a resume would refuse another config."""
from __future__ import annotations

import dataclasses
import json

import torch

from ensemble.launching.recipes import describe, parse_recipe, retry_recipe
from ensemble.launching.tasks import add_retry, job_for, plan_seeds
from ensemble.run_spec import new_spec
from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from tests.helpers import make_job, records_for, train_on_cpu
from workers.config import GANConfig
from workers.losses import mode_seeking_term
from workers.model import Generator
from workers.presets import get_preset
from workers.state_format import load_state
from workers.step import draw_batch

COLLAPSED = {"label": 417, "verdict": "collapsed", "measure": "diversity", "value": 0.12}
UNRECOGNISED = {"label": 418, "verdict": "low-accuracy", "measure": "accuracy", "value": 0.2}
GAN = {"lr": 1e-3}


def test_each_verdict_climbs_its_own_ladder_and_stays_on_the_top_rung():
    assert retry_recipe([COLLAPSED], 1, GAN, 450) == {"because": ["collapsed"], "set": {"lr": 5e-4}, "steps": 675}
    assert retry_recipe([COLLAPSED], 2, GAN, 450) == {"because": ["collapsed"], "set": {"lr": 5e-4, "g_mode_seeking": 1.0},
                                                      "steps": 675}  # fmt: skip
    assert retry_recipe([COLLAPSED], 5, GAN, 450) == retry_recipe([COLLAPSED], 2, GAN, 450)
    assert retry_recipe([UNRECOGNISED], 1, GAN, 450) == {"because": ["low-accuracy"], "set": {"lr": 5e-4}}
    assert retry_recipe([UNRECOGNISED], 2, GAN, 450) == {"because": ["low-accuracy"], "set": {"lr": 2.5e-4}, "steps": 675}
    both = retry_recipe([UNRECOGNISED, COLLAPSED, COLLAPSED], 2, GAN, 450)
    assert both == {"because": ["collapsed", "low-accuracy"], "set": {"g_mode_seeking": 1.0, "lr": 2.5e-4}, "steps": 675}
    assert describe(both) == "collapsed, low-accuracy: g_mode_seeking=1, lr=0.00025, steps=675"
    assert describe(parse_recipe("{}")) == "the run's recipe" and parse_recipe(None) == {}
    assert retry_recipe([COLLAPSED], 2, {**GAN, "g_mode_seeking": 2.0}, 450)["set"]["g_mode_seeking"] == 2.0  # never lowered


def _run_and_record(tmp_path):
    spec = new_spec(data=None, splits=100, num_classes=1000, steps=40, batch_size=8, seed=0, checkpoint_every=20)
    record = records_for([[410 + i for i in range(10)]], total_steps=40)[0]
    return spec, record, RunDir(tmp_path / "run")


def test_a_retry_s_job_trains_the_recipe_that_answers_what_failed(tmp_path):
    spec, record, run = _run_and_record(tmp_path)
    assert plan_seeds(spec, record, None) == 3 and record.recipes == ["{}"]
    first = job_for(spec, record, run)
    assert first.gan == spec.gan and first.steps == 40

    record.flags = [COLLAPSED, UNRECOGNISED]
    add_retry(spec, record)
    assert len(record.seeds) == len(record.recipes) == 2 and record.total_steps == 60
    retry = job_for(spec, record, run)
    assert retry.seed == record.seeds[1] != first.seed and retry.steps == 60  # the collapse rung: 1.5x the steps
    assert retry.gan == {**spec.gan, "lr": spec.gan["lr"] / 2}
    add_retry(spec, record)  # the second rungs: the mode-seeking term, a quarter of the lr
    assert record.total_steps == 60 and job_for(spec, record, run).steps == 60
    assert job_for(spec, record, run).gan == {**spec.gan, "g_mode_seeking": 1.0, "lr": spec.gan["lr"] / 4}
    assert json.loads(record.recipes[1])["because"] == ["collapsed", "low-accuracy"]

    # A run from before recipes were recorded: its seeds were plain; the next retry lines up.
    old = dataclasses.replace(record, seeds=record.seeds[:2], recipes=[], flags=[COLLAPSED], status=Status.FLAGGED,
                              total_steps=40)  # fmt: skip
    assert job_for(spec, old, run).gan == spec.gan
    plan_seeds(spec, old, 1)  # a relaunch with --quality-retries 1: its first retry now
    assert len(old.seeds) == len(old.recipes) == 3 and old.recipes[:2] == ["{}", "{}"]
    assert json.loads(old.recipes[2])["set"] == {"lr": spec.gan["lr"] / 2, "g_mode_seeking": 1.0}  # the second retry's rung
    assert old.flags == []


def test_the_mode_seeking_term_is_large_for_a_collapsed_pair_and_pushes_it_apart():
    config = get_preset("cpu-32").gan
    noise = torch.randn(8, config.z_dim, generator=torch.Generator().manual_seed(0))
    same = torch.zeros(8, 3, 32, 32)
    apart = torch.cat([torch.zeros(4, 3, 32, 32), torch.ones(4, 3, 32, 32)])
    assert mode_seeking_term(same, noise) > 1000 * mode_seeking_term(apart, noise)

    torch.manual_seed(0)
    generator = Generator(config)
    labels = torch.tensor([3, 1, 4, 1] * 2)  # paired: the second half repeats the first's classes
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-3)

    def spread() -> float:
        with torch.no_grad():
            images = generator(noise, labels)
        return (images[:4] - images[4:]).abs().mean().item()

    before = spread()
    for _ in range(20):
        optimiser.zero_grad()
        mode_seeking_term(generator(noise, labels), noise).backward()
        optimiser.step()
    assert spread() > 1.5 * before  # the term's gradient reaches G and spreads a class's images


def test_the_centred_mode_seeking_term_counts_a_pair_apart_in_brightness_only_as_near_copies():
    noise = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    pattern = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    lighter = torch.cat([pattern - 0.5, pattern + 0.5])  # each pair: one picture, two brightnesses
    other = torch.cat([pattern, torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))])
    assert mode_seeking_term(lighter, noise) < mode_seeking_term(other, noise)  # raw pixels: the light/dark pair is "apart"
    assert mode_seeking_term(lighter, noise, centred=True) > 1000 * mode_seeking_term(other, noise, centred=True)


def test_a_paired_batch_repeats_its_first_half_s_classes():
    images, labels = torch.zeros(20, 3, 8, 8, dtype=torch.uint8), torch.zeros(20, dtype=torch.long)
    batch = draw_batch(images, labels, 20, 4, 10, torch.Generator().manual_seed(0), paired=True)
    assert torch.equal(batch.fake_labels[:10], batch.fake_labels[10:])
    assert sorted(batch.fake_labels[:10].tolist()) == list(range(10))  # every class once per half
    plain = draw_batch(images, labels, 20, 4, 10, torch.Generator().manual_seed(0))
    assert not torch.equal(plain.fake_labels[:10], plain.fake_labels[10:])


def test_a_retry_with_another_recipe_starts_afresh_instead_of_refusing_the_config(tmp_path):
    train_on_cpu(make_job(tmp_path, 20))  # the first seed, to its end: state.pt of the run's recipe
    changed = {**get_preset("cpu-32").gan.to_dict(), "g_mode_seeking": 1.0}
    retry = train_on_cpu(make_job(tmp_path, 30, seed=8, gan=changed))
    assert retry.step == 30 and retry.resumed_from_step == 0
    state = load_state(str(tmp_path / "splits" / "041" / "state.pt"))
    assert GANConfig.from_dict(state["config"]).g_mode_seeking == 1.0 and state["seed"] == 8
    resumed = train_on_cpu(make_job(tmp_path, 40, seed=8, gan=changed))  # the retry itself resumes exactly
    assert resumed.resumed_from_step == 30

