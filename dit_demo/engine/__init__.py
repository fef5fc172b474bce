"""The engine: one request (`request`), one generation path (`generate`), the device and machine it runs on, and
paired image metrics. Subpackages: `model` (sources, loading, folder format), `quant` (recipes, calibration,
smoothing), `fast` (the GPU fast path)."""
