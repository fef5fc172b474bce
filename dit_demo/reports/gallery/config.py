"""What a gallery run is asked for (`GalleryConfig`) and what it gathers (`Gallery`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from PIL import Image

from dit_demo.engine.model.shipped import default_source

DEFAULT_RECIPES = ("bf16", "int8", "int8-a8")


@dataclass
class GalleryConfig:
    """What to generate; everything a rerun needs (it is written to results.json verbatim)."""

    source: str = field(default_factory=default_source)  # the MNIST model when present, else the digits model
    recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES))
    labels: list[str | int] | str | None = None  # None: all classes of a ≤ 10-class model, else 4 spread ids; "all"
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    steps: int = 25
    guidance_scale: float = 4.0
    scheduler: str | None = None
    batch_size: int = 8
    calibration_steps: int = 25
    warmup: bool = True
    gain: float = 8.0
    min_tile: int = 96
    max_rows_shown: int = 50
    device: str | None = None
    machine: str | None = None


@dataclass
class Gallery:
    """Gathered results of a gallery run (main process only)."""

    config: GalleryConfig
    reference: str
    recipes: list[str]
    jobs: list[dict]  # one per grid row: row, class_id, class_name, seed
    images: dict[str, list[Image.Image]]  # recipe → images in job order
    recipe_rows: dict[str, dict]
    image_rows: list[dict]
    processes: list[dict]
    environment: dict
    num_processes: int
    images_per_s: float | None
    digits: bool

    def to_json(self) -> dict:
        return {
            "config": asdict(self.config),
            "environment": self.environment,
            "reference": self.reference,
            "num_processes": self.num_processes,
            "images_per_s": self.images_per_s,
            "num_images": sum(len(v) for v in self.images.values()),
            "processes": self.processes,
            "recipes": self.recipe_rows,
            "images": self.image_rows,
        }
