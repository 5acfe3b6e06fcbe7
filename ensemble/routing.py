"""Label routing: a global label (index, class name or class id such as a WordNet id) -> the split that owns it and the
label's local index there. Always a lookup in the manifest's class lists, never arithmetic
like label // 10, so any split plan routes correctly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ensemble.errors import EnsembleError

if TYPE_CHECKING:  # any rows with these fields route: the manifest's, or an exported bundle's
    from manifests.tables.manifest import SplitRecord


INTEGER = re.compile(r"-?[0-9]+")


def _shown(text: str, limit: int = 40) -> str:
    """A label as an error quotes it: cut, so that a 5000-character one still makes one short line."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Route:
    global_label: int
    class_name: str
    local_label: int
    record: SplitRecord


class Router:
    def __init__(self, records: list[SplitRecord]):
        self.records = records
        self._by_label: dict[int, tuple[SplitRecord, int]] = {}
        self._by_name: dict[str, int] = {}  # names and ids (torchvision's ImageNet names are unique)
        for record in records:
            for local, (label, name, class_id) in enumerate(zip(record.classes, record.class_names, record.class_ids)):
                self._by_label[label] = (record, local)
                self._by_name.setdefault(name.casefold(), label)
                self._by_name.setdefault(class_id.casefold(), label)

    @property
    def num_classes(self) -> int:
        return len(self._by_label)

    def resolve(self, label: str | int) -> Route:
        """Accepts an integer label (as int or text), a class name or a class id (case-insensitive)."""
        text = str(label).strip()
        if INTEGER.fullmatch(text):  # ASCII digits only: str.isdigit() also passes '²', which int() refuses
            global_label = int(text) if len(text) <= 19 else None  # longer: out of range, whatever its value
            if global_label not in self._by_label:
                raise EnsembleError(
                    f"label {_shown(text)} is out of range: this run has labels 0-{self.num_classes - 1}"
                )
        else:
            found = self._by_name.get(text.casefold())
            if found is None:
                raise EnsembleError(
                    f"no class is named {_shown(text)!r}; pass an index 0-{self.num_classes - 1} or a name "
                    f"as `ensemble status --json` lists them (e.g. {self.records[0].class_names[0]!r})"
                )
            global_label = found
        record, local = self._by_label[global_label]
        return Route(global_label, record.class_names[local], local, record)

