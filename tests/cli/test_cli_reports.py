"""`dit-demo bench | linears | evaluate | train`: the command line becomes the library's config, errors exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from dit_demo.cli import bench, evaluate, linears, train


def test_choice_lists_are_the_engines():
    from dit_demo.engine.fast.compile import CAPTURE_MODES, COMPILE_MODES, LINEAR_KERNELS

    assert bench.COMPILE_MODE_NAMES == COMPILE_MODES and bench.KERNEL_NAMES == LINEAR_KERNELS
    assert bench.CAPTURE_NAMES == CAPTURE_MODES


def test_bench_capture_and_fusion_arguments():
    config = bench.config_from_args(
        bench.build_parser().parse_args(["--capture", "step,forward", "--fuse-qkv", "off,on"])
    )
    assert config.captures == ("step", "forward") and config.fuse == (False, True)
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--fuse-qkv", "maybe"])


def test_bench_defaults_are_the_configs():
    from dit_demo.reports.bench import BenchConfig

    assert bench.config_from_args(bench.build_parser().parse_args([])) == BenchConfig()


def test_bench_arguments_become_a_config():
    args = bench.build_parser().parse_args(
        "--model tiny-random --recipes int8,bf16 --batch 1,8 --compile reduce-overhead,none --kernels torch,triton "
        "--eager-recipes bf16 --steps 3 --guidance 2 --runs 2 --warmup-runs 1 --forward-runs 4 --device cpu "
        "--no-fast-linears --fullgraph --profile 3 --out somewhere".split()
    )
    config = bench.config_from_args(args)
    assert config.model == "tiny-random" and config.recipes == ("bf16", "int8") and config.batches == (1, 8)
    assert config.compile_modes == ("none", "reduce-overhead") and config.kernels == ("torch", "triton")
    assert config.eager_recipes == ("bf16",) and (config.steps, config.guidance, config.runs) == (3, 2.0, 2)
    assert (config.warmup_runs, config.forward_runs, config.device) == (1, 4, "cpu")
    assert not config.fast_linears and config.fullgraph and config.profile == 3 and config.out == "somewhere"


def test_bench_without_the_baseline_exits_2(tmp_path, capsys):
    assert bench.main(["--model", "tiny-random", "--recipes", "int8", "--out", str(tmp_path)]) == 2
    assert "baseline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--batch", "one"])


def test_linears_needs_cuda(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert linears.main(["--model", "tiny-random", "--out", str(tmp_path)]) == 2
    assert "CUDA" in capsys.readouterr().err


def test_evaluate_arguments_become_a_config(tmp_path):
    from dit_demo.reports.evaluate import EvaluateConfig

    assert evaluate.config_from_args(evaluate.build_parser().parse_args(["--out", str(tmp_path)])) == EvaluateConfig(
        out=tmp_path
    )
    args = evaluate.build_parser().parse_args(
        [
            "--samples",
            "10",
            "--guidance",
            "1, 4",
            "--recipes",
            "bf16,int8-a8:keep=adaln+embedders,int8:fast",
            "--no-baseline",
        ]
        + ["--steps", "5", "--batch", "5", "--seed", "3", "--threads", "1", "--out", str(tmp_path)]
    )
    config = evaluate.config_from_args(args)
    assert config.guidances == (1.0, 4.0) and config.recipes == ("bf16", "int8-a8:keep=adaln+embedders", "int8:fast")
    assert (config.samples, config.steps, config.batch, config.seed, config.threads) == (10, 5, 5, 3, 1)
    assert not config.baseline and config.out == Path(tmp_path)


def test_train_defaults_are_the_shipped_models(tmp_path):
    from dit_demo.embedded.train import EMBEDDED_DIR, TrainConfig
    from dit_demo.engine.model.resolver import EMBEDDED_MODEL_DIR

    assert train.config_from_args(train.build_parser().parse_args([])) == TrainConfig()
    assert TrainConfig().destinations() == (EMBEDDED_MODEL_DIR, EMBEDDED_DIR / "classifier")
    assert TrainConfig(out=tmp_path).destinations() == (tmp_path / "digits", tmp_path / "classifier")
    args = train.build_parser().parse_args(
        ["--out", str(tmp_path), "--dit-steps", "3", "--threads", "1", "--dtype", "float32"]
    )
    config = train.config_from_args(args)
    assert config.out == tmp_path and config.dit_steps == 3 and config.threads == 1 and config.dtype == "float32"


def test_evaluate_runs_on_a_gpu_when_asked(tmp_path):
    """The 10,000-sample digits rows were made on an H200: `--device cuda` reaches the config (fp32 reference)."""
    args = evaluate.build_parser().parse_args(["--device", "cuda", "--out", str(tmp_path)])
    assert evaluate.config_from_args(args).device == "cuda"
