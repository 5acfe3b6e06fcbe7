"""The progress board: a small actor that workers report to and the coordinator drains.

Workers never write the manifest; they post their latest numbers here (once a second,
TrainJob.report_every_seconds, and at each checkpoint), and the coordinator, its only
writer, folds them in.

The board sees every report, so it is also where steps redone are counted: when an attempt
starts from a checkpoint behind the furthest step an earlier attempt reported, the
difference was trained twice.
"""
from __future__ import annotations

from dataclasses import dataclass

import ray


@dataclass
class Drained:
    fields: dict
    """The latest value of every field reported since the last drain."""
    starts: int
    """Attempts started since the last drain."""
    steps_redone: int
    """Steps redone by those attempts."""


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self, furthest_steps: dict[int, int] | None = None) -> None:
        """`furthest_steps`: the step each split had reached in earlier launches."""
        self._latest: dict[int, dict] = {}
        self._starts: dict[int, int] = {}
        self._redone: dict[int, int] = {}
        self._furthest: dict[int, int] = dict(furthest_steps or {})

    def report(self, split: int, event: dict) -> None:
        step = event.get("step")
        if event.get("event") == "started":
            self._starts[split] = self._starts.get(split, 0) + 1
            # A quality retry starts a new seed from scratch on purpose: nothing was lost.
            lost = 0 if event.get("new_seed") else self._furthest.get(split, 0) - event.get("resumed_from", 0)
            self._redone[split] = self._redone.get(split, 0) + max(0, lost)
            self._furthest[split] = event.get("resumed_from", 0)
        elif step is not None:
            self._furthest[split] = max(self._furthest.get(split, 0), step)
        self._latest.setdefault(split, {}).update(event)

    def drain(self) -> dict[int, Drained]:
        drained = {
            split: Drained(fields, self._starts.pop(split, 0), self._redone.pop(split, 0))
            for split, fields in self._latest.items()
        }
        self._latest = {}
        return drained


def start_board(furthest_steps: dict[int, int]):
    """A board on the coordinator's own node: if it lived on a worker node, losing that node
    would lose every split's progress reports, not just that node's splits."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    return ProgressBoard.options(scheduling_strategy=strategy).remote(furthest_steps)
