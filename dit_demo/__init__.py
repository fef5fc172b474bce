"""dit-quanto-demo: see, measure and share what int8 quantization does to a Diffusion Transformer."""

__version__ = "0.1.0"
