"""The GPU benchmark tab: one screen per GPU, newest GPU first, from the committed bench/*/results.json.

Each GPU gets a headline (what quantization wins there: memory at every setting; speed only where the runs say
so, i.e. where the quantized cell's slowest run beats bf16's fastest), one chart of every setting (latency and peak
memory as ratios to bf16 compiled in the same run, so settings share one scale), a compact table of each recipe's
best setting, and the full per-run tables folded away under a disclosure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict
from html import escape
from pathlib import Path

from dit_demo.app.config import BENCH_DIR
from dit_demo.app.page.tabs import read_record
from dit_demo.app.page.views import verdict
from dit_demo.engine.timing import SpeedVerdict, verdict_from_ranges
from dit_demo.metrics import METRICS, canonical
from dit_demo.reports.charts import scatter_svg
from dit_demo.reports.tables import labelled_table, metric_table

log = logging.getLogger("dit_demo.app")
REFERENCE = "bf16"
RATIO = "latency_vs_bf16_best_compiled"

# Rows of each run's full table (metric keys: labels, units and formats from `dit_demo.metrics`).
RUN_METRICS = (
    "latency_s",
    "latency_vs_bf16_eager",
    "latency_vs_bf16_same_mode",
    "forward_s",
    "per_step_s",
    "peak_memory_bytes",
    "weight_bytes",
    "psnr_db",
    "warmup_s",
)
BEST_METRICS = (
    "latency_s",
    "latency_vs_bf16_best_compiled",
    "peak_memory_bytes",
    "peak_memory_vs_bf16_best_compiled",
    "weight_bytes",
    "psnr_db",
)


def bench_records(folder: Path = BENCH_DIR) -> list[tuple[str, dict]]:
    """Every benchmark run with a readable results.json, by folder name."""
    found = []
    for path in sorted(folder.glob("*/results.json")):
        record = read_record(path)
        if record and record.get("rows"):
            found.append((path.parent.name, record))
    return found


def mode_label(row: Mapping) -> str:
    """How a cell ran: eager, compiled (forward graphs) or whole-step graphs, with fused QKV if it was."""
    if row.get("compile_mode", row.get("compile")) == "none":
        return "eager"
    mode = "step graphs" if row.get("capture") == "step" or row.get("path") == "step-graph" else "compiled"
    return mode + (" + fused QKV" if row.get("fuse") else "")


def bench_label(row: Mapping) -> str:
    return f"{row['recipe']} {mode_label(row)}"


def setting_label(record: Mapping, row: Mapping) -> str:
    """Image size and batch: `256² batch 1` (the model name carries the size)."""
    size = re.search(r"-(\d{3,4})(?:-|$)", str(record["config"]["model"]))
    batch = row.get("batch", record["config"].get("batch"))
    return (f"{size.group(1)}² " if size else "") + f"batch {batch}"


def _ok(record: Mapping) -> list[dict]:
    return [canonical(r) for r in record["rows"] if r.get("ok", True)]


def _best_bf16(rows: list[dict]) -> dict | None:
    compiled = [r for r in rows if r["recipe"] == REFERENCE and r.get("compile", r.get("compile_mode")) != "none"]
    return min(compiled, key=lambda r: r["latency_s"]) if compiled else None


def gpu_cells(records: list[tuple[str, dict]]) -> list[dict]:
    """Every compiled quantized cell of one GPU with its setting and its bf16 baseline (the fastest compiled bf16
    cell of the same run, hence the same setting)."""
    cells = []
    for name, record in records:
        rows = _ok(record)
        base = _best_bf16(rows)
        if base is None:
            continue
        setting = setting_label(record, base) + ("" if base.get("fuse", True) else ", QKV unfused")
        for row in rows:
            if row["recipe"] == REFERENCE or row.get("compile") == "none":
                continue
            ratio = {
                "latency_vs_bf16_best_compiled": row["latency_s"] / base["latency_s"],
                "peak_memory_vs_bf16_best_compiled": row["peak_memory_bytes"] / base["peak_memory_bytes"],
            }
            timed = {"timed_runs": int(record["config"].get("runs", 1)), "interleaved": interleaved_run(record)}
            date = str(record["environment"].get("date", ""))
            cells.append({**row, **ratio, "setting": setting, "run": name, "base": base, "date": date, **timed})
    return cells


def newest_per_setting(cells: list[dict]) -> list[dict]:
    """Only the newest run's cells of each setting: an older table of the same setting (before a fix of the fast
    path) stays in the full tables but no longer speaks in the headline, chart and best-setting table."""
    newest: dict[str, str] = {}
    for c in cells:
        newest[c["setting"]] = max(newest.get(c["setting"], ""), c["date"])
    return [c for c in cells if c["date"] == newest[c["setting"]]]


def interleaved_run(record: Mapping) -> bool:
    """Whether the run timed its variants round by round (bench/h200-w8a16/e2e.py) rather than one after another."""
    return bool(record["config"].get("interleaved", False))


def bench_verdict(row: Mapping, base: Mapping, runs: int, interleaved: bool = False) -> SpeedVerdict:
    """`engine.timing`'s rule on a benchmark cell and its bf16 baseline: "faster"/"slower" only when the timed runs'
    ranges do not overlap (a row without a range is its median alone); `interleaved` says how they were timed."""

    def spread(r: Mapping) -> tuple[float, float, float]:
        return r.get("latency_min_s", r["latency_s"]), r["latency_s"], r.get("latency_max_s", r["latency_s"])

    return verdict_from_ranges(spread(base), spread(row), runs=runs, interleaved=interleaved)


def speed_word(cell: Mapping) -> str:
    """ "faster" / "slower" only when the timed runs do not overlap (slowest vs fastest); else "about as fast"."""
    return bench_verdict(cell, cell["base"], cell.get("timed_runs", 1), cell.get("interleaved", False)).direction


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}×" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}×"


def headline(cells: list[dict]) -> str:
    """What wins where on this GPU, from the numbers: memory at every setting, speed only where measured so."""
    settings = list(dict.fromkeys(c["setting"] for c in cells))
    memory = [c["peak_memory_vs_bf16_best_compiled"] for c in cells]
    weights = [c["weight_bytes_vs_bf16"] for c in cells if c.get("weight_bytes_vs_bf16")]
    lines = [
        f"<li><b>Memory wins</b> at every setting measured ({escape('; '.join(settings))}): quantized recipes peak at "
        f"{_span(memory)} bf16's peak memory" + (f", weights {_span(weights)}" if weights else "") + ".</li>"
    ]
    words = {c["setting"] + c["recipe"]: (c, speed_word(c)) for c in cells}.values()
    faster = [
        f"{c['recipe']} at {c['setting']} ({c['latency_vs_bf16_best_compiled']:.2f}×)"
        for c, w in words
        if w == "faster"
    ]
    even = [f"{c['recipe']} at {c['setting']}" for c, w in words if w == "about as fast"]
    slower = [c[RATIO] for c, w in words if w == "slower"]
    if faster:
        lines.append(
            f"<li><b>Faster than bf16 compiled</b> where the timed runs' ranges do not overlap: "
            f"{escape('; '.join(faster))}.</li>"
        )
    else:
        lines.append("<li><b>Never faster</b>: bf16 compiled was faster or as fast at every setting.</li>")
    if even:
        lines.append(f"<li>About as fast as bf16 (the runs overlap): {escape('; '.join(even))}.</li>")
    if slower:
        lines.append(f"<li>Slower where measured: {_span(slower)} bf16 compiled's latency.</li>")
    return f'<ul class="dq-headline">{"".join(lines)}</ul>'


def gpu_chart(cells: list[dict]) -> str:
    """Every setting on one scale: latency and peak memory ÷ bf16 compiled of the same run (dashed lines = 1)."""
    latency, memory = METRICS["latency_vs_bf16_best_compiled"], METRICS["peak_memory_vs_bf16_best_compiled"]
    points = [
        {
            "x": latency.number(c["latency_vs_bf16_best_compiled"]),
            "y": memory.number(c["peak_memory_vs_bf16_best_compiled"]),
            "label": f"{c['recipe']} {c['setting'].replace('batch ', 'b')}",
            "x_text": f"{latency.text(c['latency_vs_bf16_best_compiled'])} latency",
            "y_text": f"{memory.text(c['peak_memory_vs_bf16_best_compiled'])} peak memory ({mode_label(c)})",
        }
        for c in cells
    ]
    chart = scatter_svg(points, "latency (× bf16 compiled)", "peak memory (× bf16)", "Every setting", guides=(1, 1))
    note = "Both axes ÷ the fastest compiled bf16 of the same run (same setting). Left of the dashed line: faster; "
    note += "below it: less memory."
    return chart + f'<p class="dq-note">{note}</p>'


def best_table(cells: list[dict]) -> str:
    """Each recipe at the setting where it does best against bf16 compiled."""
    best: dict[str, dict] = {}
    for c in cells:
        if (
            c["recipe"] not in best
            or c["latency_vs_bf16_best_compiled"] < best[c["recipe"]]["latency_vs_bf16_best_compiled"]
        ):
            best[c["recipe"]] = c
    heads = ["recipe", "best setting", *(METRICS[k].header for k in BEST_METRICS)]
    heads[3], heads[5] = "latency (× bf16 compiled)", "peak memory (× bf16 compiled)"
    rows = [
        [r, f"{c['setting']}, {mode_label(c)}", *(METRICS[k].cell(c.get(k)) for k in BEST_METRICS)]
        for r, c in best.items()
    ]
    return labelled_table(heads, rows, table_id="")


def run_section(name: str, record: Mapping) -> str:
    """One benchmark run in full: what ran where, a verdict per quantized cell, its table."""
    config, env = record["config"], record["environment"]
    rows = _ok(record)
    random_weights = str(config["model"]).endswith("-random")
    head = (
        f"<h4>{escape(str(config['model']))}, {escape(setting_label(record, rows[0]))} ({escape(name)})</h4>"
        f"<p class='dq-note'>torch {escape(env['torch'])}, diffusers {escape(env['diffusers'])}, optimum-quanto "
        f"{escape(env['optimum_quanto'])}, {escape(str(env['date'])[:10])}. {config['steps']} DPM-Solver steps, "
        f"guidance {config['guidance']:g}, median of {config['runs']} "
        + ("interleaved rounds (every variant once per round)" if interleaved_run(record) else "runs")
        + f" after {config['warmup_runs']} warm-up runs"
        + ("; random weights with the exact DiT-XL/2 architecture" if random_weights else "")
        + ". Ratios compare with bf16 in the same mode; PSNR with bf16 eager.</p>"
    )
    verdicts = []
    for r in rows:
        if r["recipe"] == REFERENCE:
            continue
        same = [b for b in rows if b["recipe"] == REFERENCE and mode_label(b) == mode_label(r)]
        baseline = f"bf16 {mode_label(same[0])}" if same else "bf16"
        runs, timed_together = int(config.get("runs", 1)), interleaved_run(record)
        speed = asdict(bench_verdict(r, same[0], runs, timed_together)) if same else None
        line = {
            "label": bench_label(r),
            "recipe": r["recipe"],
            "speed_verdict": speed,
            "latency_ratio": r.get("latency_vs_bf16_same_mode"),
            "peak_memory_ratio": r.get("peak_memory_vs_bf16_same_mode"),
            "weight_bytes_ratio": r.get("weight_bytes_vs_bf16"),
            "psnr_db": r.get("psnr_db"),
        }
        verdicts.append(verdict(line, baseline, where=" on this GPU"))
    records = [{**r, "psnr_db": "—"} if r["recipe"] == REFERENCE and mode_label(r) == "eager" else r for r in rows]
    table = metric_table(records, RUN_METRICS, [bench_label(r) for r in rows])
    items = "".join(f"<li>{escape(line)}</li>" for line in verdicts)
    return head + f'<ul class="dq-verdicts">{items}</ul>' + table


def gpu_section(gpu: str, records: list[tuple[str, dict]]) -> str:
    """One GPU in one screen: headline, chart, best setting per recipe, full tables folded away."""
    env = records[0][1]["environment"]
    dates = sorted({str(r["environment"]["date"])[:10] for _, r in records})
    cells = newest_per_setting(gpu_cells(records))
    head = (
        f'<section class="dq-gpu"><h3>{escape(gpu)}</h3><p class="dq-note">{len(records)} runs, '
        f"{escape(' to '.join(dict.fromkeys([dates[0], dates[-1]])))}; torch {escape(env['torch'])}. Each quantized "
        "setting against the fastest compiled bf16 of its own run (the newest run of each setting); latency is the "
        "median of the timed runs.</p>"
    )
    body = headline(cells) + gpu_chart(cells) + "<h4>Best setting per recipe</h4>" + best_table(cells) if cells else ""
    full = []
    for name, record in records:
        try:
            full.append(run_section(name, record))
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # another tool's results.json: not this table
            log.warning("Benchmark tab: skipped %s/results.json (%s: %s)", name, type(exc).__name__, exc)
    details = f"<details><summary>All {len(full)} runs on this GPU, full tables</summary>{''.join(full)}</details>"
    return head + body + details + "</section>"


def bench_html(folder: Path = BENCH_DIR) -> str | None:
    """Every GPU of this checkout's benchmark runs, newest first; None when there is none (the tab is left out)."""
    by_gpu: dict[str, list[tuple[str, dict]]] = {}
    for name, record in bench_records(folder):
        try:
            by_gpu.setdefault(str(record["environment"]["machine"]), []).append((name, record))
        except (KeyError, TypeError):
            log.warning("Benchmark tab: skipped %s/results.json (no environment.machine)", name)
    if not by_gpu:
        return None
    newest = sorted(
        by_gpu, key=lambda g: max(str(r["environment"].get("date", "")) for _, r in by_gpu[g]), reverse=True
    )
    intro = (
        "<p>DiT-XL/2 on data-centre GPUs: bf16 compiled and the quantized recipes through the project's fast path. "
        "Runs of <code>dit-demo bench</code> build each variant alone on the GPU (one after another); the H200's "
        "newest runs (<code>bench/h200-w8a16/e2e.py</code>) hold every recipe of a setting in one process and time "
        "them in interleaved rounds. Each run's note says which.</p>"
    )
    return intro + "".join(gpu_section(gpu, by_gpu[gpu]) for gpu in newest)
