"""The GPU fast path: compile-friendly quantized linears (int8, fp8), fused QKV, Triton kernels, per-request
conditioning tables and the whole denoising step captured as CUDA graphs. Optional: nothing below generate needs it."""
