"""Class labels: ImageNet names offline, name/id resolution with "did you mean" suggestions."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from dit_demo.errors import InvalidRequestError

IMAGENET_LABELS_FILE = Path(__file__).parent / "data" / "imagenet_id2label.json"
# the embedded digits model's classes (its model_index.json), named here so the page needs no torch to know them
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@lru_cache(maxsize=1)
def imagenet_id2label() -> dict[int, str]:
    """ImageNet-1k names in index order (comma-separated synonyms, as in facebook/DiT-XL-2-* model_index.json)."""
    data = json.loads(IMAGENET_LABELS_FILE.read_text(encoding="utf-8"))
    return {int(k): v for k, v in data["id2label"].items()}


def display_name(id2label: Mapping[int, str], class_id: int) -> str:
    """The first synonym: "golden retriever" rather than the whole WordNet lemma list."""
    return id2label.get(class_id, str(class_id)).split(",")[0].strip()


def name_to_id(id2label: Mapping[int, str]) -> dict[str, int]:
    """Every synonym (lower-cased) → class id; the first class wins when two share a synonym."""
    table: dict[str, int] = {}
    for class_id in sorted(id2label):
        for synonym in id2label[class_id].split(","):
            table.setdefault(synonym.strip().lower(), class_id)
    return table


def suggest(name: str, id2label: Mapping[int, str], limit: int = 5) -> list[str]:
    """Closest known names to a misspelt one, for the error message."""
    candidates = list(name_to_id(id2label))
    close = difflib.get_close_matches(name.strip().lower(), candidates, n=limit, cutoff=0.5)
    if len(close) < limit:  # substring hits help for partial words ("retriev")
        close += [c for c in candidates if name.strip().lower() in c and c not in close][: limit - len(close)]
    return close


def resolve_labels(requested: Iterable[str | int], id2label: Mapping[int, str]) -> list[int]:
    """Turn names or ids (ints or digit strings) into class ids, or raise with suggestions."""
    table = name_to_id(id2label)
    num_classes = len(id2label)
    ids: list[int] = []
    for item in requested:
        if isinstance(item, bool):
            raise InvalidRequestError(f"Class {item!r} is not a class name or id.")
        if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
            class_id = int(item)
            if not 0 <= class_id < num_classes:
                raise InvalidRequestError(
                    f"Class id {class_id} is out of range: this model has ids 0–{num_classes - 1}."
                )
            ids.append(class_id)
            continue
        if not isinstance(item, str) or not item.strip():
            raise InvalidRequestError(f"Class {item!r} is empty or not a name.")
        key = item.strip().lower()
        if key not in table:
            hints = suggest(item, id2label)
            hint = f" Did you mean: {', '.join(hints)}?" if hints else ""
            raise InvalidRequestError(f"Unknown class {item.strip()!r}.{hint}")
        ids.append(table[key])
    if not ids:
        raise InvalidRequestError("No class selected: give at least one class name or id.")
    return ids


def choices(id2label: Mapping[int, str]) -> list[str]:
    """Names for a picker, in id order: "207: golden retriever"."""
    return [f"{i}: {display_name(id2label, i)}" for i in sorted(id2label)]


def parse_choice(choice: str | int) -> str | int:
    """Accept picker strings ("207: golden retriever") as well as plain names/ids (numpy integers included)."""
    if isinstance(choice, np.integer):
        return int(choice)
    if isinstance(choice, str) and ":" in choice and choice.split(":", 1)[0].strip().isdigit():
        return int(choice.split(":", 1)[0])
    return choice


def spread_ids(num_classes: int, count: int) -> Sequence[int]:
    """Evenly spaced class ids (calibration and galleries cover the label space, not only its start)."""
    count = max(1, min(count, num_classes))
    return [round(i * (num_classes - 1) / max(count - 1, 1)) for i in range(count)]
