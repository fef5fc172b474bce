"""Planning a gallery before any work: recipes in order, classes, (class, seed) jobs, fixed batches, shown rows."""

from __future__ import annotations

from collections.abc import Sequence

from dit_demo.engine.generate import Variant
from dit_demo.engine.model.labels import spread_ids
from dit_demo.engine.quant.recipes import RECIPES
from dit_demo.errors import InvalidRequestError

Job = tuple[int, int]  # (class id, seed)


def plan_jobs(class_ids: Sequence[int], seeds: Sequence[int]) -> list[Job]:
    """Grid rows in order: every seed of the first class, then of the next (class × seed)."""
    return [(int(c), int(s)) for c in class_ids for s in seeds]


def plan_batches(jobs: Sequence[Job], batch_size: int) -> list[tuple[int, list[Job]]]:
    """Fixed batches of jobs, laid out before any split across processes, so each image is computed in the same
    batch (same shapes, same kernels) whatever the process count — the reason gathered results are identical."""
    if batch_size < 1:
        raise InvalidRequestError(f"batch size must be ≥ 1, got {batch_size}.")
    return [(i // batch_size, list(jobs[i : i + batch_size])) for i in range(0, len(jobs), batch_size)]


def shown_rows(jobs: Sequence[dict], limit: int) -> list[dict]:
    """At most `limit` rows for the grid and page, taking seeds round-robin over classes (every class appears
    before any gets a third seed), in row order. Metrics always cover every job; this only keeps pictures small
    when an evaluation asks for many images per class (FID)."""
    if limit >= len(jobs):
        return list(jobs)
    rank: dict[int, int] = {}
    keyed = []
    for job in jobs:
        rank[job["class_id"]] = rank.get(job["class_id"], -1) + 1
        keyed.append((rank[job["class_id"]], job["row"], job))
    return sorted((job for _, _, job in sorted(keyed, key=lambda k: k[:2])[:limit]), key=lambda j: j["row"])


def requested_labels(labels: Sequence[str | int] | str | None, reference: Variant) -> list[str | int]:
    """`"all"` = every class of the model (2,000 images for 1,000 classes × 2 seeds); None = `default_labels`."""
    if labels == "all":
        return sorted(reference.id2label)
    return list(labels) if labels else default_labels(reference)


def default_labels(reference: Variant) -> list[int]:
    """Every class of a small label set (the digits), else four classes spread over the label space."""
    ids = sorted(reference.id2label)
    return ids if len(ids) <= 10 else [ids[i] for i in spread_ids(len(ids), 4)]


def ordered_recipes(recipes: Sequence[str], reference: str) -> list[str]:
    """Reference first, duplicates dropped, unknown names refused before any work."""
    for name in recipes:
        if name not in RECIPES and name != reference:
            raise InvalidRequestError(f"Unknown recipe {name!r}: choose from {', '.join(RECIPES)}.")
    rest = [r for r in dict.fromkeys(recipes) if r != reference]
    return [reference, *rest]
