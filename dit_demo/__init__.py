"""dit-quanto-demo: see, measure and share what int8 quantization does to a Diffusion Transformer.

The public API, what the README's library snippet uses::

    from dit_demo import SamplingRequest, build_reference, build_variant, compare

Each name is imported on first use (PEP 562), so `import dit_demo` and `dit-demo --help` stay cheap.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"
__all__ = ["SamplingRequest", "__version__", "build_reference", "build_variant", "compare"]

_PUBLIC = {
    "build_reference": "dit_demo.engine.generate",  # load a model source as the full-precision reference
    "build_variant": "dit_demo.engine.generate",  # a quantized copy of it, by recipe name
    "compare": "dit_demo.compare",  # the same seeds through every variant, scored against the reference
    "SamplingRequest": "dit_demo.engine.request",  # classes, seed, steps, guidance: validated once
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


class _Package(types.ModuleType):
    """Importing the submodule `dit_demo.compare` binds the package attribute `compare` to that module; the public
    name `compare` is the function, whichever was imported first."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "compare" and isinstance(value, types.ModuleType):
            value = value.compare
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
