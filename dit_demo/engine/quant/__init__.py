"""Quantization: the recipe registry, optimum-quanto quantization and calibration, and channel smoothing for the
w8a8 recipes."""
