"""What the commands share: the model options, comma-separated list types and the exit policy.

Light on purpose (standard library only): `dit-demo <cmd> --help` imports this and nothing heavy. Recipes and keep
groups come from the recipe registry (engine/quant/recipes.py, standard library only); the scheduler names come
from `engine.model.names` so `--help` need not import diffusers (tests/cli/test_cli_main.py asserts they equal
`engine.model.sources.SCHEDULERS`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dit_demo.engine.model.names import SCHEDULER_NAMES
from dit_demo.engine.quant.recipes import KEEP_GROUPS, RECIPES
from dit_demo.errors import DemoError

MODEL_HELP = (
    "mnist (default when its weights are present) | embedded (the 16x16 digits model) | Hub id | folder | "
    "dit-xl-2-256-random | dit-xl-2-512-random | tiny-random"
)

EXIT_BAD_INPUT = 2


def comma_list(text: str) -> list[str]:
    """`a, b,,c` → ['a', 'b', 'c'] (an argparse `type`)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def comma_ints(text: str) -> list[int]:
    """`7,8` → [7, 8]; anything else is an argparse error (exit 2 with usage)."""
    try:
        return [int(item) for item in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def add_quantize_args(parser: argparse.ArgumentParser, recipes: tuple[str, ...] = tuple(RECIPES)) -> None:
    """--recipe, --device, --keep, --exclude, --calibration-steps: how a variant is built."""
    parser.add_argument("--recipe", default="int8", choices=list(recipes))
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        choices=list(KEEP_GROUPS),
        help="keep a module group in full precision (repeatable)",
    )
    parser.add_argument("--exclude", action="append", default=[], help="extra fnmatch pattern to keep (repeatable)")
    parser.add_argument("--calibration-steps", type=int, default=25, help="sampling steps to calibrate int8-a8")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """--model, --scheduler and the variant options of `generate` and `quantize`."""
    parser.add_argument("--model", default=None, help=MODEL_HELP)
    add_quantize_args(parser)
    parser.add_argument("--scheduler", default=None, choices=list(SCHEDULER_NAMES))


def resolve_model(model: str | None):
    """`--model` resolved once (a `ResolvedSource` the command passes on); errors name the option."""
    from dit_demo.engine.model.resolver import resolve_source

    try:
        return resolve_source(model)
    except DemoError as exc:
        raise type(exc)(f"--model: {exc}") from exc


def guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """The exit policy of every command: a person-readable error on stderr and an exit code, never a traceback.

    A `DemoError` with an `exit_code` (the Hub errors: 4 token, 5 access, 6 network, 7 conflict, 8 other) exits
    with it; any other `DemoError` (bad input, unloadable model) and an existing output folder exit with 2."""
    try:
        return run(args)
    except (DemoError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
