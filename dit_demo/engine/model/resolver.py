"""What a model source string is, decided once per request: `resolve_source` returns a frozen `ResolvedSource` that
loading, the app (validator, offered models, budget estimate), the CLI and the Hub scripts pass along instead of
the string, so nothing classifies, downloads or reads a folder's metadata twice.

Sources: the embedded digits model (package data of this layer), a Hub id, a local pipeline folder (pre-quantized
when it holds quanto's map), or the exact DiT-XL/2 architecture with random weights. Hostile strings are refused
before they reach the filesystem: too long, or a path the OS cannot even look up, with only a short prefix echoed.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dit_demo.engine.model import folder_format as fmt
from dit_demo.engine.model.labels import imagenet_id2label
from dit_demo.engine.model.names import RANDOM_SOURCES
from dit_demo.engine.model.shipped import EMBEDDED_MODEL_DIR, MNIST_ALIASES, MNIST_MODEL_DIR, default_source
from dit_demo.errors import InvalidRequestError, ModelLoadError

EMBEDDED_ALIASES = ("embedded", "digits", "embedded-digits")
KNOWN_HUB_MODELS = ("facebook/DiT-XL-2-256", "facebook/DiT-XL-2-512")
MAX_SOURCE_CHARS = 1024  # a Hub id is at most 96 + 1 + 96; a longer path than this is not a model anyone has
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
KINDS = ("embedded", "hub", "folder", "prequantized", "random")


def shown(text: str, limit: int = 60) -> str:
    """A source as a message may echo it: a short prefix, never a 100 kB string."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


@dataclass(frozen=True)
class ResolvedSource:
    """A model source as decided once: what it is, where it lives, what it was saved as and its class names."""

    source: str  # as given (stripped): the cache key and what the app shows in its picker
    kind: str  # one of KINDS; a pre-quantized Hub repo is "hub" with `recipe` set
    name: str  # as published: a local folder by its name only, never its path
    folder: Path | None = None  # the local pipeline folder (a Hub repo: its snapshot once `fetched`)
    revision: str | None = None
    recipe: str | None = None  # the recipe a pre-quantized source was saved as; None for full precision
    metadata: Mapping | None = field(default=None, compare=False)  # dit_demo.json of a folder saved by this project
    id2label: Mapping[int, str] = field(default_factory=dict, compare=False)
    labels_known: bool = False  # id2label read from the source itself, not assumed to be ImageNet's

    @property
    def prequantized(self) -> bool:
        return self.recipe is not None

    @property
    def local(self) -> bool:
        """A folder on this machine that the user gave (not the shipped model, not a Hub snapshot)."""
        return self.kind in ("folder", "prequantized")

    def fetched(self) -> ResolvedSource:
        """The same source with its local folder: a Hub repo is downloaded (safetensors/json only) and read again."""
        if self.kind != "hub" or self.folder is not None:
            return self
        snapshot = download_pipeline(self.source, revision=self.revision)
        return replace(self, folder=snapshot, **_folder_facts(snapshot))


def _folder_facts(folder: Path) -> dict:
    """What a pipeline folder says about itself: saved recipe and metadata, class names."""
    index = fmt.read_json(folder / fmt.MODEL_INDEX_NAME, f"The pipeline index ({fmt.MODEL_INDEX_NAME})")
    labels = fmt.index_labels(index)
    fmt.check_component_configs(folder, missing_ok=True)  # a damaged config is named before anything is queued
    metadata = fmt.read_metadata(folder)
    prequantized = fmt.is_prequantized(folder)
    return {
        "recipe": fmt.saved_recipe(metadata) if prequantized else None,
        "metadata": metadata,
        "id2label": labels or imagenet_id2label(),
        "labels_known": labels is not None,
    }


def _hub_cached(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """A file of a Hub repo if it is already in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # cache oddities: just "not known"
        return None
    return Path(found) if isinstance(found, str) else None


def _hub_facts(repo_id: str, revision: str | None) -> dict:
    """A Hub repo's class names and saved recipe from the local cache only (the app's validator must not download)."""
    index_file = _hub_cached(repo_id, fmt.MODEL_INDEX_NAME, revision)
    labels = fmt.index_labels(fmt.read_json(index_file, "The pipeline index")) if index_file else None
    qmap = _hub_cached(repo_id, f"transformer/{fmt.QMAP_NAME}", revision)
    meta_file = _hub_cached(repo_id, fmt.METADATA_NAME, revision)
    metadata = fmt.read_metadata(meta_file.parent) if meta_file else None
    return {
        "recipe": fmt.saved_recipe(metadata) if qmap else None,
        "metadata": metadata,
        "id2label": labels or imagenet_id2label(),
        "labels_known": labels is not None,
    }


def _unknown(source: str) -> ModelLoadError:
    return ModelLoadError(
        f"Unknown model source {shown(source)}: not a folder here, not a Hub id (owner/name), and not one of "
        f"{', '.join(sorted({*EMBEDDED_ALIASES, *RANDOM_SOURCES}))}."
    )


def _local_path(source: str) -> Path | None:
    """The folder a source string names, None when nothing is there; a name the OS cannot look up is refused."""
    path = Path(source).expanduser()
    try:
        if not path.exists():
            return None
    except OSError as exc:  # ENAMETOOLONG above all: say so without echoing the name
        reason = "a file or folder name in it is too long" if exc.errno == errno.ENAMETOOLONG else exc.strerror
        raise InvalidRequestError(f"{shown(source)} is not a usable path ({reason}).") from None
    if not path.is_dir():
        raise ModelLoadError(f"{shown(source)} is a file; give the pipeline folder that holds {fmt.MODEL_INDEX_NAME}.")
    if not (path / fmt.MODEL_INDEX_NAME).is_file():
        raise ModelLoadError(
            f"{path} is not a diffusers pipeline folder (no {fmt.MODEL_INDEX_NAME}). Point --model at a folder saved "
            "by `dit_demo` or `DiTPipeline.save_pretrained`, a Hub id such as facebook/DiT-XL-2-256, or 'embedded'."
        )
    return path


def resolve_source(
    source: str | ResolvedSource | None = None, *, revision: str | None = None, fetch: bool = False
) -> ResolvedSource:
    """Decide what `source` is, without loading weights (a resolved source is returned as is).

    A local folder's metadata and labels are read now (a damaged file is named now, not mid-load); a Hub repo is
    only looked up in the local cache unless `fetch` (then it is downloaded: what loading needs)."""
    if isinstance(source, ResolvedSource):
        return source.fetched() if fetch else source
    if source is not None and not isinstance(source, str):
        raise InvalidRequestError(f"A model source is text, got {type(source).__name__}.")
    source = (source or "").strip() or default_source()
    if len(source) > MAX_SOURCE_CHARS:
        raise InvalidRequestError(
            f"{shown(source, 40)} is too long ({len(source):,} characters; at most {MAX_SOURCE_CHARS:,})."
        )
    if source in EMBEDDED_ALIASES:
        if not (EMBEDDED_MODEL_DIR / fmt.MODEL_INDEX_NAME).is_file():
            raise ModelLoadError(f"The embedded digits model is missing from {EMBEDDED_MODEL_DIR}; reinstall dit_demo.")
        facts = _folder_facts(EMBEDDED_MODEL_DIR)
        return ResolvedSource(source, "embedded", "embedded", EMBEDDED_MODEL_DIR, **facts)
    if source in MNIST_ALIASES:
        if not (MNIST_MODEL_DIR / fmt.MODEL_INDEX_NAME).is_file():
            raise ModelLoadError(f"The embedded MNIST model is missing from {MNIST_MODEL_DIR}; reinstall dit_demo.")
        return ResolvedSource(source, "embedded", "mnist", MNIST_MODEL_DIR, **_folder_facts(MNIST_MODEL_DIR))
    if source in RANDOM_SOURCES:
        return ResolvedSource(source, "random", source, id2label=imagenet_id2label(), labels_known=True)
    path = _local_path(source)
    if path is not None:
        facts = _folder_facts(path)
        kind = "prequantized" if facts["recipe"] else "folder"
        return ResolvedSource(source, kind, path.resolve().name, path, **facts)
    if not HUB_ID.match(source) or source.startswith((".", "/", "~")):
        raise _unknown(source)
    resolved = ResolvedSource(source, "hub", source, revision=revision, **_hub_facts(source, revision))
    return resolved.fetched() if fetch else resolved


def _hub_error(source: str, exc: Exception) -> ModelLoadError:
    reason = (str(exc).splitlines() or [""])[0][:200]
    return ModelLoadError(
        f"Could not load {shown(source)} from the Hugging Face Hub ({type(exc).__name__}: {reason}). "
        "If the repo is private or gated, set HF_TOKEN; if this machine is offline, download it once elsewhere "
        f"(`hf download {source}`), copy the cache and set HF_HUB_OFFLINE=1; or pass a local pipeline folder. "
        "The embedded digits model ('embedded') always works offline."
    )


def download_pipeline(repo_id: str, **kwargs) -> Path:
    """Fetch a pipeline repo's safetensors/json files (never pickles) and return the local snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md", "*.png"], **kwargs))
    except Exception as exc:  # httpx, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, ...
        raise _hub_error(repo_id, exc) from exc
