"""DiT's conditioning, computed once per request instead of once per step.

In DiT-XL/2 every block turns (timestep, class) into its own adaLN shift/scale/gate through a timestep MLP, a label
table and a 1152 → 6912 linear (`norm1.linear`), and the final layer does the same through `proj_out_1`. None of it
depends on the latent, and all of it is known before sampling starts (the request fixes the classes, the sampler
fixes the timesteps). Per step it is 28 weight-streaming GEMVs on 2 rows (CFG) — about a fifth of a batch-1
forward's kernel time on an H100 (bench/h100-b256 profiles) — for numbers that could be read from a table.

`install_tables` swaps those linears for `ConditioningTable` modules. While `active`, a table module ignores its
input and returns its slice of one shared `current` buffer, which the captured step fills from the per-request
table (one gather per step); Inductor then drops the unused embedding work from the compiled forward. While not
active it is the linear it replaced. `fill_tables` computes every step's conditioning in one batched pass per
block (steps × rows rows: GEMMs that read each weight once per request, not once per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class ConditioningTable(torch.nn.Module):
    """A conditioning linear whose per-step outputs can be served from a precomputed table."""

    def __init__(self, source: torch.nn.Module, out_features: int, offset: int):
        super().__init__()
        self.source = source
        self.out_features = out_features
        self.offset = offset  # this module's columns in the shared table
        self.active = False
        self.current: torch.Tensor | None = None  # [rows, total columns], shared by every table module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return self.source(x)
        return self.current[:, self.offset : self.offset + self.out_features]

    def extra_repr(self) -> str:
        return f"columns {self.offset}:{self.offset + self.out_features}, active={self.active}"


def _out_features(module: torch.nn.Module) -> int:
    return int(module.out_features)


def supports_tables(transformer: torch.nn.Module) -> bool:
    """DiT with adaLN-Zero blocks (every DiT this project builds or loads)."""
    config = getattr(transformer, "config", None)
    blocks = getattr(transformer, "transformer_blocks", None)
    return (
        config is not None
        and config.get("norm_type") == "ada_norm_zero"
        and blocks is not None
        and hasattr(transformer, "proj_out_1")
        and all(getattr(b.norm1, "emb", None) is not None for b in blocks)
    )


def install_tables(transformer: torch.nn.Module) -> list[ConditioningTable]:
    """Wrap every block's `norm1.linear` and the final `proj_out_1` (idempotent); returns the table modules."""
    existing = [m for m in transformer.modules() if isinstance(m, ConditioningTable)]
    if existing:
        return existing
    tables, offset = [], 0
    for block in transformer.transformer_blocks:
        table = ConditioningTable(block.norm1.linear, _out_features(block.norm1.linear), offset)
        block.norm1.linear = table
        tables.append(table)
        offset += table.out_features
    final = ConditioningTable(transformer.proj_out_1, _out_features(transformer.proj_out_1), offset)
    transformer.proj_out_1 = final
    return [*tables, final]


def total_columns(tables: list[ConditioningTable]) -> int:
    return tables[-1].offset + tables[-1].out_features


def activate(tables: list[ConditioningTable], current: torch.Tensor | None) -> None:
    """Serve the tables from `current` ([rows, total columns]); None switches them back to their linears."""
    for table in tables:
        table.active = current is not None
        table.current = current


@torch.no_grad()
def fill_tables(
    transformer: torch.nn.Module,
    tables: list[ConditioningTable],
    timesteps: torch.Tensor,
    class_labels: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Every step's conditioning into `out` ([steps, rows, total columns]); `timesteps` [steps × rows] and
    `class_labels` [steps × rows] are the transformer's inputs of every step, flattened step-major."""
    steps, rows, _ = out.shape
    dtype = out.dtype
    flat = out.view(steps * rows, -1)
    blocks = transformer.transformer_blocks
    first = None
    for block, table in zip(blocks, tables):
        embedding = block.norm1.emb(timesteps, class_labels, hidden_dtype=dtype)
        if first is None:
            first = embedding
        flat[:, table.offset : table.offset + table.out_features] = table.source(F.silu(embedding))
    final = tables[-1]
    # DiTTransformer2DModel's final layer reuses block 0's embedder: proj_out_1(silu(emb_0(t, y)))
    flat[:, final.offset : final.offset + final.out_features] = final.source(F.silu(first))
