"""Thin CLIs over dit_demo for the Hugging Face Hub: push a quantized repo, share a gallery, deploy the Space."""
