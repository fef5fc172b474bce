"""Ahead-of-time packages: built here, loaded in a fresh process, same images as eager; bad packages refused.

On CPU AOTInductor compiles C++ instead of Triton, but export, packaging, the weights handed over from the live
variant, the checks and the step path are the same code as on the GPU (bench/h200-aot has the H200 numbers).
"""

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict

import numpy as np
import pytest

from dit_demo.engine.fast import aot
from dit_demo.engine.fast.compile_cache import CompileCacheError, load_compile_cache
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.request import SamplingRequest

REQUEST = SamplingRequest(labels=(3, 207), seeds=(1, 2), steps=5, guidance_scale=4.0)
FRESH = """
import sys, numpy as np
from dit_demo.engine.fast import aot
from dit_demo.engine.generate import build_reference, build_variant, generate
from dit_demo.engine.request import SamplingRequest
path, recipe, out = sys.argv[1:]
variant = build_variant(build_reference("tiny-random", device="cpu"), recipe)
variant = aot.load_package(variant, path)
result = generate(variant, SamplingRequest(labels=(3, 207), seeds=(1, 2), steps=5, guidance_scale=4.0))
np.save(out, np.stack([np.asarray(image) for image in result.images]))
print(variant.compile_mode, variant.pipe.last_path)
"""


def _pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images]).astype(int)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["bf16", "int8"])
def test_package_round_trip_in_a_fresh_process_gives_the_eager_images(tmp_path, recipe):
    variant = build_variant(build_reference("tiny-random", device="cpu"), recipe)
    eager = _pixels(generate(variant, REQUEST))  # the plain pipeline
    path = tmp_path / f"{recipe}.pt2"
    info = aot.build_package(variant, path, batch=2, guidance_scale=4.0)
    assert path.is_file() and info.package_bytes == path.stat().st_size and info.rows == 4
    assert aot.sidecar(path).is_file()
    out = tmp_path / "images.npy"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", FRESH, str(path), recipe, str(out)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2].startswith("aot+step-graph+fused-qkv") and done.stdout.split()[-1] == "step"
    loaded = np.load(out).astype(int)
    assert loaded.shape == eager.shape
    assert np.abs(loaded - eager).max() <= 2  # fp32 on CPU; fused QKV and Inductor's C++ change summation order


@pytest.fixture(scope="module")
def tiny_variant():
    return build_variant(build_reference("tiny-random", device="cpu"), "int8")


def _fake_package(tmp_path, variant, payload: bytes, **changes):
    """A package file with a well-formed description beside it (sha256 of `payload` unless changed)."""
    path = tmp_path / "model.pt2"
    path.write_bytes(payload)
    transformer = variant.pipe.transformer
    info = aot.PackageInfo(
        format=aot.FORMAT, recipe=variant.recipe, source=variant.source, batch=1, cfg=True, rows=2,
        sample_size=int(transformer.config.sample_size), in_channels=4, columns=8, dtype="float32", device="cpu",
        device_name="cpu", torch=__import__("torch").__version__, label="", sha256=aot._sha256(path),
    )  # fmt: skip
    data = {**asdict(info), **changes}
    aot.sidecar(path).write_text(json.dumps(data), encoding="utf-8")
    return path


def _zip_bytes(tmp_path) -> bytes:
    archive = tmp_path / "foreign.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("model/data/hello.txt", "not a model")
    return archive.read_bytes()


def test_missing_package_or_description_is_refused_naming_the_file(tmp_path, tiny_variant):
    with pytest.raises(aot.PackageError, match="nothing.pt2: no such AOT package file"):
        aot.load_package(tiny_variant, tmp_path / "nothing.pt2")
    lone = tmp_path / "lone.pt2"
    lone.write_bytes(b"PK\x03\x04 something")
    with pytest.raises(aot.PackageError, match=r"lone.pt2: no lone.json beside it"):
        aot.load_package(tiny_variant, lone)
    aot.sidecar(lone).write_text("{not json", encoding="utf-8")
    with pytest.raises(aot.PackageError, match="lone.json: not a dit_demo AOT package description"):
        aot.load_package(tiny_variant, lone)


def test_corrupt_package_is_refused_before_loading(tmp_path, tiny_variant):
    path = _fake_package(tmp_path, tiny_variant, _zip_bytes(tmp_path))
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")  # changed after it was described
    with pytest.raises(aot.PackageError, match="model.pt2: corrupt or replaced"):
        aot.load_package(tiny_variant, path)


@pytest.mark.parametrize(
    ("field", "value"), [("recipe", "fp8-a8"), ("sample_size", 64), ("torch", "2.0.0"), ("device", "cuda")]
)
def test_package_built_for_something_else_is_refused(tmp_path, tiny_variant, field, value):
    path = _fake_package(tmp_path, tiny_variant, _zip_bytes(tmp_path), **{field: value})
    with pytest.raises(aot.PackageError, match=f"model.pt2: built for {field}="):
        aot.load_package(tiny_variant, path)


def test_foreign_archive_with_a_matching_description_is_refused_by_the_loader(tmp_path, tiny_variant):
    path = _fake_package(tmp_path, tiny_variant, _zip_bytes(tmp_path))
    with pytest.raises(aot.PackageError, match="model.pt2: AOTInductor could not load it"):
        aot.load_package(tiny_variant, path)
    assert getattr(tiny_variant.pipe, "sampler", None) is None or tiny_variant.pipe.sampler.forward is None


def test_wrong_path_suffix_is_refused(tmp_path, tiny_variant):
    with pytest.raises(ValueError, match="must end in .pt2"):
        aot.build_package(tiny_variant, tmp_path / "model.bin")


def test_compile_cache_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CompileCacheError, match="cache.json: missing"):
        load_compile_cache(tmp_path / "cache.bin")
    (tmp_path / "cache.bin").write_bytes(b"artifacts")
    (tmp_path / "cache.json").write_text(json.dumps({"format": "dit-demo-compile-cache/1", "sha256": "0" * 64}))
    with pytest.raises(CompileCacheError, match="cache.bin: corrupt or replaced"):
        load_compile_cache(tmp_path / "cache.bin")
    (tmp_path / "cache.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(CompileCacheError, match="cache.json: not a dit_demo compile-cache description"):
        load_compile_cache(tmp_path / "cache.bin")
