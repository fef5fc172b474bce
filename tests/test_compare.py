import pytest

from dit_demo.compare import VariantCache, compare, is_digits_model
from dit_demo.engine.request import SamplingRequest


def test_compare_reference_first_with_quality(tiny_reference, tiny_variants):
    variants = {"int8": tiny_variants["int8"], "bf16": tiny_reference}
    seen = []
    comparison = compare(
        variants, SamplingRequest.create([207, 1], seed=0, steps=4), on_result=lambda r, _: seen.append(r)
    )
    assert seen == ["bf16", "int8"]
    rows = {row["recipe"]: row for row in comparison.rows()}
    assert rows["bf16"]["psnr_db"] is None and rows["bf16"]["ssim"] == pytest.approx(1.0)  # identical to itself
    assert rows["int8"]["psnr_db"] > 40 and rows["int8"]["weight_bytes_ratio"] < 0.8
    assert rows["bf16"]["latency_ratio"] == 1.0
    assert not is_digits_model(tiny_reference)


def test_compare_needs_the_reference(tiny_variants):
    with pytest.raises(ValueError, match="reference"):
        compare({"int8": tiny_variants["int8"]}, SamplingRequest.create([1], steps=2))


def test_cache_builds_once_and_stays_bounded():
    cache = VariantCache(max_variants=2, device="cpu")
    messages = []
    first = cache.get("tiny-random", "int8", on_build=messages.append)
    assert cache.get("tiny-random", "int8") is first
    assert messages == ["Loading tiny-random…", "Quantizing to int8…"]
    cache.get("tiny-random", "fp8")
    assert len(cache) == 2
    assert cache.key("tiny-random", VariantCache.REFERENCE_KEY) in cache  # the reference outlives its variants
    assert cache.get("tiny-random", "bf16") is cache.reference("tiny-random")
    assert cache.key("tiny-random", "fp8") in cache and cache.key("tiny-random", "int8") not in cache


def test_rows_speak_the_one_vocabulary(tiny_reference, tiny_variants):
    """Every quality/ratio key a row carries is a documented metric, and the same key is computed the same way."""
    from dit_demo.compare import image_quality, ratios
    from dit_demo.metrics import METRICS

    request = SamplingRequest.create([3, 4], seed=2, steps=3)
    comparison = compare({"bf16": tiny_reference, "int8": tiny_variants["int8"]}, request)
    row = {r["recipe"]: r for r in comparison.rows()}["int8"]
    for key in ("psnr_db", "ssim", "latency_ratio", "peak_memory_ratio", "weight_bytes_ratio"):
        assert key in METRICS and key in row
    for key in row:  # every timing, byte count and ratio a row carries has a label and unit
        if key.endswith(("_bytes", "_s", "_ratio", "_db")) or key in ("ssim", "digit_accuracy", "fid"):
            assert key in METRICS, key
    result = comparison.results["int8"]
    assert {k: row[k] for k in ("psnr_db", "ssim")} == image_quality(comparison.reference.images, result.images)
    assert ratios(result, comparison.reference)["weight_bytes_ratio"] == row["weight_bytes_ratio"]


def test_digits_model_gets_classifier_scores(digits_reference):
    from dit_demo.compare import digit_quality

    assert is_digits_model(digits_reference)
    request = SamplingRequest.create([3, 7], seed=0, steps=10)
    comparison = compare({"bf16": digits_reference}, request)
    row = comparison.rows()[0]
    assert {"digit_accuracy", "digit_confidence", "predicted_digits", "confidences"} <= set(row)
    assert digit_quality(comparison.reference.images, [3, 7])["digit_accuracy"] == row["digit_accuracy"]


def test_speed_rests_on_interleaved_rounds(tiny_reference, tiny_variants, monkeypatch):
    """`rounds` timed runs per recipe, in the order reference, recipe, reference, recipe…; the first is the run whose
    images are scored; the verdict and ratio come from the spreads."""
    import sys

    compare_module = sys.modules[compare.__module__]

    real, order = compare_module.generate, []

    def recording(variant, request):
        order.append((variant.recipe, request.warmup))
        return real(variant, request)

    monkeypatch.setattr(compare_module, "generate", recording)
    request = SamplingRequest.create([3], seed=2, steps=2, warmup=True)
    comparison = compare({"bf16": tiny_reference, "int8": tiny_variants["int8"]}, request, rounds=3)
    assert order == [("bf16", True), ("int8", True)] + [("bf16", False), ("int8", False)] * 2  # warmed up once
    for recipe, result in comparison.results.items():
        spread = comparison.latencies[recipe]
        assert spread.runs == 3 and spread.samples[0] == result.latency_s
    rows = {r["recipe"]: r for r in comparison.rows()}
    speed = comparison.speed("int8")
    assert rows["int8"]["speed_verdict"]["direction"] == speed.direction
    assert rows["int8"]["latency_ratio"] == pytest.approx(speed.ratio, rel=1e-3)
    assert "speed_verdict" not in rows["bf16"] and rows["bf16"]["latency_runs"] == 3
    single = compare({"bf16": tiny_reference, "int8": tiny_variants["int8"]}, request)
    assert "speed_verdict" not in single.rows()[1]  # one run is no verdict
