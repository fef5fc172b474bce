"""`dit-demo <command>`: one entry point for every command; it imports only the command it runs.

Each command is a module under `dit_demo.cli` (the Hub ones in `dit_demo.cli.publish`) with `build_parser()`,
`run(args) -> int` and `main(argv) -> int` and no heavy import at its top, so `dit-demo --help` and
`dit-demo <command> --help` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from dit_demo import __version__
from dit_demo.cli.common import guarded

# name → (module under dit_demo.cli, one line for `dit-demo --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "generate images with one recipe; print timings, memory and quality"),
    "quantize": ("quantize", "quantize a model and save a complete pipeline folder (quanto format)"),
    "gallery": ("gallery", "comparison gallery: grid, difference tiles, metrics table, index.html"),
    "bench": ("bench", "GPU benchmark of recipes and compile modes: latency, memory, quality"),
    "cpu-bench": ("cpu_bench", "CPU benchmark: every recipe against fp32, interleaved rounds with spread"),
    "compile-cache": (
        "compile_cache",
        "compile a Space's variants once on a GPU; save torch.compile's caches to ship",
    ),
    "linears": ("linears", "per-layer timings of the linear layers of one real forward (CUDA)"),
    "evaluate": ("evaluate", "digit accuracy and FID of the embedded digits model per recipe"),
    "layer-errors": ("layer_errors", "which layers and timesteps carry a recipe's quantization error (SNR)"),
    "train": ("train", "train the embedded digits model (seeded, CPU)"),
    "push-model": ("publish.push_model", "write a quantized model repo with its measured card; --push uploads it"),
    "push-gallery": ("publish.push_gallery", "share a gallery folder as a dataset repo; --push uploads it"),
    "deploy-space": ("publish.deploy_space", "prepare the Gradio Space folder; --push uploads it"),
}


def build_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    listing = "\n".join(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="dit-demo",
        description="See, measure and share what quantization does to a Diffusion Transformer.",
        epilog=f"commands:\n{listing}\n\n`dit-demo COMMAND --help` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="dit-demo [-h] [--version] COMMAND [ARGS ...]",
    )
    parser.add_argument("--version", action="version", version=f"dit-demo {__version__}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    return parser


def command_module(name: str):
    """The module of a command, imported now (and only now)."""
    return importlib.import_module(f"dit_demo.cli.{COMMANDS[name][0]}")


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        build_parser().print_help(sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        build_parser().parse_args(argv[:1])  # --help / --version / an unknown command: argparse exits
        return 2  # pragma: no cover (parse_args always exits here)
    name, rest = argv[0], argv[1:]
    module = command_module(name)
    parser = module.build_parser()
    parser.prog = f"dit-demo {name}"
    return guarded(module.run, parser.parse_args(rest))


if __name__ == "__main__":
    raise SystemExit(main())
