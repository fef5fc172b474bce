"""The shipped digits DiT (diffusers DiTPipeline folder `digits/`), its CNN judge and training/evaluation scripts."""
