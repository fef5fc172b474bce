"""Fused Triton kernels for the int8 linears of the fast path (CUDA only; `available()` says whether they can run).

Why: under `torch.compile`, Inductor lowers `x @ W_int8.to(bf16)ᵀ` to a cast kernel that writes a bf16 copy of every
weight plus a cuBLAS matmul that reads it again — more memory traffic than bf16 itself. These kernels read the
int8 weights straight into the tensor-core loop and apply the scales in the epilogue:

- `int8_weight_linear`: y = (x @ W_int8ᵀ) · s_w + b, x in bf16/fp16 (quanto's qint8 weight-only linear);
- `int8_static_linear`: x arrives quantized with the calibrated input scale (plain torch ops that Inductor fuses into
  the kernel producing x), int8 × int8 → int32 on the int8 tensor cores (no 16-row minimum, unlike `torch._int_mm`),
  then y = acc · s_x · s_w + b and the calibrated output fake-quantization in the epilogue — quanto's static w8a8
  linear with no extra pass over memory.

- ≤ 16 rows (CFG's 2-row adaLN / timestep layers) take a weight-streaming GEMV instead of tensor-core tiles.

Both are registered with `torch.library.triton_op`, so `torch.compile` and CUDA graphs see through them (no graph
break). Numerics: int32 accumulation is exact, so `int8_static_linear` differs from the plain-op reference only by
fp32 rounding in the epilogue; `int8_weight_linear` accumulates in fp32 like cuBLAS, in another order.

Measured on an H100 (bench/README.md) with the first tile list: correct, but slower than the cast + cuBLAS path at
every DiT-XL/2 layer shape (2.1–2.6× cuBLAS bf16 time at 512 rows). The weight-only kernel now has its own Hopper
tile list (`_weight_configs`) and unmasked loads where K allows; whether it beats cast + cuBLAS is decided per layer
shape from GEMM times measured on the GPU (`dit_demo.engine.fast.kernel_choice`, `kernel="auto"` → "shape").
"""

from __future__ import annotations

import functools
import os

import torch

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's CPU interpreter: the tests' way to run the kernels
FEW_ROWS = 16  # at most this many rows (CFG's 2-row adaLN / timestep layers): GEMV kernel / 16-row tiles

try:  # triton ships with CUDA builds of torch; CPU-only installs run the plain-op path
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton
except ImportError:  # pragma: no cover - exercised on CPU-only installs
    triton = None


@functools.cache
def available() -> bool:
    """True when the Triton kernels can run here: triton importable and a CUDA GPU present."""
    return triton is not None and torch.cuda.is_available()


if triton is not None:

    def _configs(int8_dot: bool, few_rows: bool) -> list:
        """Autotuning candidates for the two regimes DiT has: 2-row adaLN/timestep GEMVs and 512–8192-row token
        matmuls (each regime tunes only its own, so warm-up stays short). SWAP_AB computes yᵀ = W·xᵀ: the weight
        tile is the tensor cores' A operand (64-row granularity, converted in registers) and the few rows of x
        the narrow B side, instead of padding 2 rows up to a 64-row A tile."""
        k2 = 2 if int8_dot else 1  # int8 operands: twice the K per tile in the same shared memory
        if few_rows:  # int8 × int8 only: weight-only GEMVs have their own kernel below
            shapes = [  # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, SWAP_AB)
                (16, 64, 128 * k2, 4, 4, False),
                (16, 32, 128 * k2, 4, 5, False),
                (16, 128, 64 * k2, 4, 4, False),
            ]
        else:
            shapes = [
                (64, 64, 128 * k2, 4, 4, False),
                (64, 128, 64 * k2, 4, 4, False),
                (128, 64, 64 * k2, 4, 4, False),
                (128, 128, 64 * k2, 8, 4, False),
                (64, 256, 64 * k2, 4, 4, False),
                (32, 64, 128 * k2, 4, 4, True),
                (32, 128, 64 * k2, 4, 4, True),
                (64, 64, 128 * k2, 4, 4, True),
                (64, 128, 64 * k2, 4, 4, True),
                (128, 64, 64 * k2, 4, 4, True),
                (128, 128, 64 * k2, 8, 4, True),
                (64, 128, 128 * k2, 4, 3, True),
            ]
        return [
            triton.Config(
                {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8, "SWAP_AB": swap}, num_warps=w, num_stages=st
            )
            for m, n, k, w, st, swap in shapes
        ]

    @triton.jit
    def _tile_offsets(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
        """Grouped program order (L2 reuse of weight tiles across row blocks), as in Triton's matmul tutorial."""
        pid = tl.program_id(0)
        num_pid_m = tl.cdiv(M, BLOCK_M)
        num_pid_n = tl.cdiv(N, BLOCK_N)
        num_pid_in_group = GROUP_M * num_pid_n
        group_id = pid // num_pid_in_group
        first_pid_m = group_id * GROUP_M
        group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
        pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
        pid_n = (pid % num_pid_in_group) // group_size_m
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        return offs_m, offs_n

    @triton.jit
    def _int8_matmul(
        x_ptr, w_ptr, M, N, K, stride_xm, stride_xk, stride_wn, stride_wk, offs_m, offs_n,
        INT8_DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
        SWAP_AB: tl.constexpr, EVEN_K: tl.constexpr,
    ):  # fmt: skip
        """The main loop: int8 weight tiles meet x tiles (bf16/fp16, or int8 for INT8_DOT) on the tensor cores.
        Returns acc as [BLOCK_M, BLOCK_N] (or its transpose [BLOCK_N, BLOCK_M] with SWAP_AB).

        Rows past M / N wrap around (read valid memory, dropped by the masked store), as in Triton's matmul
        tutorial; with EVEN_K (K a multiple of every BLOCK_K) the loads carry no mask at all, so they stay plain
        vectorized asynchronous copies."""
        offs_k = tl.arange(0, BLOCK_K)
        rows_m = offs_m % M
        rows_n = offs_n % N
        acc_dtype = tl.int32 if INT8_DOT else tl.float32
        if SWAP_AB:
            w_ptrs = w_ptr + rows_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
            x_ptrs = x_ptr + rows_m[None, :] * stride_xm + offs_k[:, None] * stride_xk
            acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=acc_dtype)
        else:
            w_ptrs = w_ptr + rows_n[None, :] * stride_wn + offs_k[:, None] * stride_wk
            x_ptrs = x_ptr + rows_m[:, None] * stride_xm + offs_k[None, :] * stride_xk
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=acc_dtype)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            if EVEN_K:
                w = tl.load(w_ptrs)
                x = tl.load(x_ptrs)
            elif SWAP_AB:
                k_left = K - k * BLOCK_K
                w = tl.load(w_ptrs, mask=offs_k[None, :] < k_left, other=0)
                x = tl.load(x_ptrs, mask=offs_k[:, None] < k_left, other=0)
            else:
                k_left = K - k * BLOCK_K
                w = tl.load(w_ptrs, mask=offs_k[:, None] < k_left, other=0)
                x = tl.load(x_ptrs, mask=offs_k[None, :] < k_left, other=0)
            if SWAP_AB:
                if INT8_DOT:
                    acc = tl.dot(w, x, acc, out_dtype=tl.int32)
                else:
                    acc = tl.dot(w.to(x.dtype), x, acc)
            else:
                if INT8_DOT:
                    acc = tl.dot(x, w, acc, out_dtype=tl.int32)
                else:
                    acc = tl.dot(x, w.to(x.dtype), acc)
            x_ptrs += BLOCK_K * stride_xk
            w_ptrs += BLOCK_K * stride_wk
        return acc

    @triton.jit
    def _per_column(ptr, offs_n, n_mask, SWAP_AB: tl.constexpr):
        """A per-output-feature vector (scale, bias) shaped to broadcast over acc."""
        v = tl.load(ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
        return v[:, None] if SWAP_AB else v[None, :]

    @triton.jit
    def _store(y_ptr, y, offs_m, offs_n, M, N, stride_ym, stride_yn, SWAP_AB: tl.constexpr):
        if SWAP_AB:
            y_ptrs = y_ptr + offs_m[None, :] * stride_ym + offs_n[:, None] * stride_yn
            tl.store(y_ptrs, y.to(y_ptr.dtype.element_ty), mask=(offs_m[None, :] < M) & (offs_n[:, None] < N))
        else:
            y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
            tl.store(y_ptrs, y.to(y_ptr.dtype.element_ty), mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))

    @triton.jit
    def _int8_weight_kernel(
        x_ptr, w_ptr, scale_ptr, bias_ptr, y_ptr,
        M, N, K,
        stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
        HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
        SWAP_AB: tl.constexpr,
    ):  # fmt: skip
        offs_m, offs_n = _tile_offsets(M, N, BLOCK_M, BLOCK_N, GROUP_M)
        acc = _int8_matmul(
            x_ptr, w_ptr, M, N, K, stride_xm, stride_xk, stride_wn, stride_wk, offs_m, offs_n,
            False, BLOCK_M, BLOCK_N, BLOCK_K, SWAP_AB, EVEN_K,
        )  # fmt: skip
        n_mask = offs_n < N
        acc = acc * _per_column(scale_ptr, offs_n, n_mask, SWAP_AB)
        if HAS_BIAS:
            acc = acc + _per_column(bias_ptr, offs_n, n_mask, SWAP_AB)
        _store(y_ptr, acc, offs_m, offs_n, M, N, stride_ym, stride_yn, SWAP_AB)

    def _gemv_configs(block_m: int) -> list:
        """Weight-streaming tiles: few output features per program (hundreds of programs in flight), long K steps,
        the [M, N, K] partial products kept in registers (≤ 32 per thread) and reduced once at the end."""
        configs = []
        for warps in (4, 8):
            for n in (4, 8, 16):
                for k in (64, 128, 256, 512, 1024):
                    if block_m * n * k <= 32 * 32 * warps and n * k >= 64 * warps:
                        configs.append(triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=2))
        return configs

    @triton.jit
    def _int8_weight_gemv_kernel(
        x_ptr, w_ptr, scale_ptr, bias_ptr, y_ptr,
        M, N, K,
        stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
        HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        """y = (x @ Wᵀ) · s + b for ≤ 16 rows (CFG's adaLN / timestep layers): no tensor cores, the int8 weight
        streamed once at full bandwidth, every row of x reused against it from registers."""
        offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_m = tl.arange(0, BLOCK_M)
        n_mask, m_mask = offs_n < N, offs_m < M
        partial = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            w_ptrs = w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
            w = tl.load(w_ptrs, mask=n_mask[:, None] & k_mask[None, :], other=0).to(tl.float32)
            x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :] * stride_xk
            x = tl.load(x_ptrs, mask=m_mask[:, None] & k_mask[None, :], other=0.0).to(tl.float32)
            partial += x[:, None, :] * w[None, :, :]
        acc = tl.sum(partial, axis=2)
        acc = acc * tl.load(scale_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        if HAS_BIAS:
            acc = acc + tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
        y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])

    @triton.jit
    def _fake_quantize(v, scale, INTERPRET: tl.constexpr):
        """quanto's activation rounding, clamp(round_half_even(v / s)) · s; clamping first gives the same result."""
        if INTERPRET:  # the CPU interpreter has no libdevice: exact half-to-even rounding from floor()
            q = tl.minimum(tl.maximum(v / scale, -128.0), 127.0)
            f = tl.floor(q)
            d = q - f
            odd = (f - 2.0 * tl.floor(f * 0.5)) == 1.0
            q = tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)
        else:  # IEEE division (Triton's `/` is approximate): ties such as bf16 values at x.5 steps must stay ties
            q = tl.minimum(tl.maximum(tl.math.div_rn(v, scale), -128.0), 127.0)
            q = tl.extra.cuda.libdevice.rint(q)
        return q * scale

    @triton.jit
    def _int8_static_kernel(
        xq_ptr, w_ptr, scale_ptr, bias_ptr, in_scale_ptr, out_scale_ptr, y_ptr,
        M, N, K,
        stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
        HAS_BIAS: tl.constexpr, HAS_OUTPUT_SCALE: tl.constexpr, INTERPRET: tl.constexpr, EVEN_K: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
        SWAP_AB: tl.constexpr,
    ):  # fmt: skip
        offs_m, offs_n = _tile_offsets(M, N, BLOCK_M, BLOCK_N, GROUP_M)
        acc = _int8_matmul(
            xq_ptr, w_ptr, M, N, K, stride_xm, stride_xk, stride_wn, stride_wk, offs_m, offs_n,
            True, BLOCK_M, BLOCK_N, BLOCK_K, SWAP_AB, EVEN_K,
        )  # fmt: skip
        n_mask = offs_n < N
        in_scale = tl.load(in_scale_ptr).to(tl.float32)
        y = acc.to(tl.float32) * (in_scale * _per_column(scale_ptr, offs_n, n_mask, SWAP_AB))
        # The plain-op path rounds to the activation dtype before adding the bias and fake-quantizing: do the same.
        y = y.to(y_ptr.dtype.element_ty).to(tl.float32)
        if HAS_BIAS:
            y = y + _per_column(bias_ptr, offs_n, n_mask, SWAP_AB)
            y = y.to(y_ptr.dtype.element_ty).to(tl.float32)
        if HAS_OUTPUT_SCALE:
            y = _fake_quantize(y, tl.load(out_scale_ptr).to(tl.float32), INTERPRET)
        _store(y_ptr, y, offs_m, offs_n, M, N, stride_ym, stride_yn, SWAP_AB)

    def _autotuned(kernel, int8_dot: bool) -> dict:
        return {
            few: triton.autotune(configs=_configs(int8_dot, few), key=["M", "N", "K"])(kernel) for few in (True, False)
        }

    def _weight_configs() -> list:
        """W8A16 candidates for Hopper-class GPUs at DiT-XL/2's token GEMMs (512–16384 rows, K 1152/4608, N 1152–
        4608). SWAP_AB first: the converted int8 weight tile is the tensor cores' A operand, which wgmma can read
        from registers, so the int8 → bf16 conversion needs no trip back through shared memory; the activations are
        the B operand straight from shared memory. The non-swapped tiles (weight as B) stay as candidates.

        No 8-warp SWAP_AB tile: on the H200 (torch 2.11, Triton 3.6) the 256×128×64 8-warp SWAP_AB tile returned
        wrong outputs (max error 28–35 % of the output range) at every shape where autotuning picked it, which was
        most of them (bench/h200-w8a16/run1/gemm); the other 8-warp SWAP_AB tiles share its structure (two warpgroups
        reading the converted weight from registers) and were never checked, so they are gone too. The 4-warp
        SWAP_AB tiles were correct wherever they were picked, and with this list every output was correct at all
        16 shapes (bench/h200-w8a16/run2/gemm)."""
        shapes = [  # (BLOCK_M tokens, BLOCK_N weight rows, BLOCK_K, warps, stages, SWAP_AB)
            (64, 64, 128, 4, 4, True),
            (128, 64, 128, 4, 4, True),
            (64, 128, 128, 4, 4, True),
            (256, 64, 64, 4, 4, True),
            (128, 128, 64, 8, 4, False),
            (128, 256, 64, 8, 3, False),
            (64, 128, 128, 4, 4, False),
            (64, 64, 128, 4, 4, False),
            (128, 64, 128, 4, 4, False),
        ]
        return [
            triton.Config(
                {"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8, "SWAP_AB": swap}, num_warps=w, num_stages=st
            )
            for m, n, k, w, st, swap in shapes
        ]

    def _quick_bench(kernel_call, quantiles):
        """Autotuning timings of 5 ms warm-up + 20 ms per candidate (Triton's default is 25 + 100 ms): the
        candidates × 16 DiT shapes stay inside a device call's budget."""
        return triton.testing.do_bench(kernel_call, warmup=5, rep=20, quantiles=quantiles)

    _WEIGHT_KERNEL = triton.autotune(configs=_weight_configs(), key=["M", "N", "K"], do_bench=_quick_bench)(
        _int8_weight_kernel
    )
    _STATIC_KERNELS = _autotuned(_int8_static_kernel, int8_dot=True)
    _GEMV_BLOCK_M = (2, 4, 8, 16)
    _GEMV_KERNELS = {
        block_m: triton.autotune(configs=_gemv_configs(block_m), key=["M", "N", "K"])(_int8_weight_gemv_kernel)
        for block_m in _GEMV_BLOCK_M
    }

    def even_k(K: int, int8_dot: bool) -> bool:
        """K is a multiple of every BLOCK_K candidate (≤ 128, or ≤ 256 for int8 × int8): no K masks needed."""
        return K % (256 if int8_dot else 128) == 0

    def _grid(M: int, N: int):
        return lambda meta: (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

    @triton_op("dit_demo::int8_weight_linear", mutates_args=())
    def int8_weight_linear(
        x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """y = (x @ weightᵀ) · scale + bias for a 2-D x and an int8 [N, K] weight with per-row scales."""
        M, K = x.shape
        N = weight.shape[0]
        y = torch.empty((M, N), device=x.device, dtype=x.dtype)
        strides = (x.stride(0), x.stride(1), weight.stride(0), weight.stride(1), y.stride(0), y.stride(1))
        bias_or_dummy = bias if bias is not None else scale
        if M <= FEW_ROWS:
            block_m = next(b for b in _GEMV_BLOCK_M if b >= M)
            grid = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]),)  # noqa: E731
            wrap_triton(_GEMV_KERNELS[block_m])[grid](
                x, weight, scale, bias_or_dummy, y, M, N, K, *strides, HAS_BIAS=bias is not None, BLOCK_M=block_m
            )
        else:
            wrap_triton(_WEIGHT_KERNEL)[_grid(M, N)](
                x, weight, scale, bias_or_dummy, y, M, N, K, *strides, HAS_BIAS=bias is not None,
                EVEN_K=even_k(K, int8_dot=False),
            )  # fmt: skip
        return y

    @triton_op("dit_demo::int8_static_linear", mutates_args=())
    def int8_static_linear(
        xq: torch.Tensor,
        weight: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        input_scale: torch.Tensor,
        output_scale: torch.Tensor | None,
        out_dtype: torch.dtype,
    ) -> torch.Tensor:
        """quanto's static w8a8 linear on `xq` (x already quantized with `input_scale`, fused by Inductor into the
        layer that produced x): int8 matmul, rescale, bias, output fake-quant; y in `out_dtype`."""
        M, K = xq.shape
        N = weight.shape[0]
        y = torch.empty((M, N), device=xq.device, dtype=out_dtype)
        wrap_triton(_STATIC_KERNELS[M <= FEW_ROWS])[_grid(M, N)](
            xq, weight, scale, bias if bias is not None else scale, input_scale,
            output_scale if output_scale is not None else input_scale, y,
            M, N, K,
            xq.stride(0), xq.stride(1), weight.stride(0), weight.stride(1), y.stride(0), y.stride(1),
            HAS_BIAS=bias is not None, HAS_OUTPUT_SCALE=output_scale is not None, INTERPRET=INTERPRET,
            EVEN_K=even_k(K, int8_dot=True),
        )  # fmt: skip
        return y
