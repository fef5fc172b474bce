"""The bounded variant cache as the app uses it: schedulers share one transformer, and an evicted variant's memory
really comes back (nothing else keeps it alive)."""

from __future__ import annotations

import gc
import weakref

from dit_demo.app.inputs import Request
from dit_demo.app.service import DemoService
from dit_demo.compare import VariantCache
from dit_demo.engine.request import SamplingRequest


def request(recipes: list[str], scheduler: str) -> Request:
    return Request("tiny-random", SamplingRequest.create([1], seed=0, steps=2, scheduler=scheduler), recipes)


def test_schedulers_share_the_loaded_weights() -> None:
    service = DemoService("tiny-random", device="cpu", max_variants=3)
    transformers = []
    for scheduler in ("dpm", "ddim", "euler"):
        result = service.compare(request(["int8"], scheduler))
        assert result.reference.scheduler.lower().startswith({"dpm": "dpmsolver"}.get(scheduler, scheduler))
        _, variants = service.variants(request(["int8"], "dpm"))
        transformers.append({recipe: v.pipe.transformer for recipe, v in variants.items()})
    assert all(t["bf16"] is transformers[0]["bf16"] and t["int8"] is transformers[0]["int8"] for t in transformers)
    assert len(service.cache) == 2  # one reference, one int8: no copy per scheduler


def test_evicted_variants_are_freed() -> None:
    evicted: list[tuple] = []
    cache = VariantCache(max_variants=2, device="cpu", on_evict=lambda key, variant: evicted.append(key))
    first = cache.get("tiny-random", "int8")
    transformer, pipe = weakref.ref(first.pipe.transformer), weakref.ref(first.pipe)
    reference = weakref.ref(cache.reference("tiny-random").pipe.transformer)
    del first
    cache.get("tiny-random", "fp8")  # over capacity: int8 goes, the reference stays
    assert evicted == [cache.key("tiny-random", "int8")]
    gc.collect()
    assert transformer() is None and pipe() is None  # its memory came back
    assert reference() is not None


def test_service_drops_what_it_derived_from_an_evicted_variant() -> None:
    service = DemoService("tiny-random", device="cpu", max_variants=2)
    service.compare(request(["int8"], "dpm"))
    int8 = service.cache.get("tiny-random", "int8")
    service._compiled[("tiny-random", "int8", "reduce-overhead")] = int8  # as a compiled copy would be kept
    pipe = weakref.ref(int8.pipe)
    del int8
    service.compare(request(["fp8"], "dpm"))  # evicts int8
    assert not service._compiled and ("tiny-random", "int8") not in service._seconds_per_image_step
    gc.collect()
    assert pipe() is None
