"""Gallery planning: jobs, fixed batches, the rows shown in the grid and page, recipe order."""

from __future__ import annotations

import pytest

from dit_demo.errors import InvalidRequestError
from dit_demo.reports.gallery import ordered_recipes, plan_batches, plan_jobs, shown_rows


def test_shown_rows_cover_every_class_first():
    jobs = [{"row": i, "class_id": c, "seed": s} for i, (c, s) in enumerate(plan_jobs([5, 7, 9], range(4)))]
    shown = shown_rows(jobs, 7)
    assert [(j["class_id"], j["seed"]) for j in shown] == [(5, 0), (5, 1), (5, 2), (7, 0), (7, 1), (9, 0), (9, 1)]
    assert shown_rows(jobs, 100) == jobs


def test_batches_are_laid_out_before_any_split():
    jobs = plan_jobs([5, 7], [0, 1])
    assert jobs == [(5, 0), (5, 1), (7, 0), (7, 1)]
    assert plan_batches(jobs, 3) == [(0, [(5, 0), (5, 1), (7, 0)]), (1, [(7, 1)])]
    with pytest.raises(InvalidRequestError, match="batch size"):
        plan_batches(jobs, 0)


def test_reference_first_duplicates_dropped_unknown_refused():
    assert ordered_recipes(["int8", "bf16", "int8", "int8-a8"], "bf16") == ["bf16", "int8", "int8-a8"]
    with pytest.raises(InvalidRequestError, match="int9"):
        ordered_recipes(["int9"], "bf16")


def test_all_labels_means_every_class_of_the_model(tiny_reference):
    """On a 1,000-class model `--labels all` is 1,000 classes (the multi-GPU run's 2,000 images), not the default 4."""
    from dit_demo.reports.gallery.planning import default_labels, requested_labels

    assert requested_labels("all", tiny_reference) == list(range(1000))
    assert (
        requested_labels(None, tiny_reference) == default_labels(tiny_reference)
        and len(default_labels(tiny_reference)) == 4
    )
    assert requested_labels([3, "golden retriever"], tiny_reference) == [3, "golden retriever"]
