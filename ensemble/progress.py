"""The progress board: a small actor that workers report to and the coordinator drains.

Workers never write the manifest; they post their latest numbers here (a few times a
second at most), and the coordinator, its only writer, folds them in.
"""
from __future__ import annotations

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self) -> None:
        self._latest: dict[int, dict] = {}
        self._starts: dict[int, int] = {}

    def report(self, split: int, event: dict) -> None:
        if event.get("event") == "started":
            self._starts[split] = self._starts.get(split, 0) + 1
        self._latest.setdefault(split, {}).update(event)

    def drain(self) -> dict[int, tuple[dict, int]]:
        """{split: (merged latest fields, attempts started)} since the last drain."""
        drained = {split: (fields, self._starts.pop(split, 0)) for split, fields in self._latest.items()}
        self._latest = {}
        return drained
