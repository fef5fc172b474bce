"""Ahead-of-time packages: built here, loaded in a fresh process, same images as eager; bad packages refused.

On CPU AOTInductor compiles C++ instead of Triton, but export, packaging, the weights handed over from the live
variant, the checks and the step path are the same code as on the GPU (bench/h200-aot has the H200 numbers).
"""

import json
import os
import struct
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
    with zipfile.ZipFile(path) as archive:  # the library no longer asks for an executable stack
        libraries = [name for name in archive.namelist() if name.endswith(".so")]
        assert libraries and all(not _stack_flags(archive.read(name)) & 0x1 for name in libraries)
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


def _elf_with_stack_flags(path, flags: int) -> None:
    """A minimal 64-bit ELF header with two program headers (a PT_LOAD, then PT_GNU_STACK with `flags`)."""
    header = bytearray(64)
    header[:6] = aot.ELF_MAGIC
    struct.pack_into("<Q", header, 32, 64)  # program headers right after the ELF header
    struct.pack_into("<H", header, 54, 56)  # entry size
    struct.pack_into("<H", header, 56, 2)  # entry count
    load, stack = bytearray(56), bytearray(56)
    struct.pack_into("<II", load, 0, 1, 0x5)
    struct.pack_into("<II", stack, 0, aot.PT_GNU_STACK, flags)
    path.write_bytes(bytes(header + load + stack))


def _stack_flags(data: bytes) -> int:
    offset, size, count = struct.unpack_from("<Q", data, 32)[0], *struct.unpack_from("<HH", data, 54)
    for index in range(count):
        kind, flags = struct.unpack_from("<II", data, offset + index * size)
        if kind == aot.PT_GNU_STACK:
            return flags
    raise AssertionError("no PT_GNU_STACK entry")


def test_clear_execstack_drops_only_the_executable_bit(tmp_path):
    library = tmp_path / "wrapper.so"
    _elf_with_stack_flags(library, 0x7)  # RWE, what AOTInductor's wrapper library asks for
    assert aot.clear_execstack(library) is True
    assert _stack_flags(library.read_bytes()) == 0x6  # RW
    assert struct.unpack_from("<II", library.read_bytes(), 64) == (1, 0x5)  # other entries untouched
    assert aot.clear_execstack(library) is False
    (tmp_path / "text.so").write_bytes(b"not an ELF file at all, really not" * 3)
    with pytest.raises(aot.PackageError, match="text.so: not a 64-bit ELF library"):
        aot.clear_execstack(tmp_path / "text.so")
