"""Start-up of `python app.py` on this machine: seconds to the page's first HTTP 200, seconds to the first finished
answer through gradio_client, and `python -X importtime`'s top importers, over several runs (median, min–max).

Each round runs the app twice, interleaved: once plain (the two timings) and once under `-X importtime` (the import
table only: its own printing slows the process, so its timings are not used). The clock starts when the process
is spawned. The first answer is the request the page sends when Generate is pressed on the first screen (default
classes, steps, recipes) and includes gradio_client's connection. The 1-minute load average is recorded before and
after every run: other work on the machine shows in it.

Run: `python bench/cpu-startup/run.py [--runs 5] [--baseline OTHER_CHECKOUT] [--out results.json]`; `--baseline`
measures another checkout of the app (e.g. the commit before the serve-first start-up) in the same rounds.
`python bench/cpu-startup/run.py --render` rewrites README.md's table from results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HEAVY_PACKAGES = ("gradio", "torch", "diffusers", "optimum", "torchmetrics", "transformers", "scipy", "pandas", "numpy")
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
BEGIN, END = "<!-- results: written by run.py --render -->", "<!-- end of results -->"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process has used: on a busy machine wall-clock start-up stretches
    with the load, its CPU time much less, so it tells what an idle machine's start-up would cost."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def first_request(root: Path) -> list:
    """What the first screen sends on Generate: the default model's default classes, seed, steps and recipes."""
    probe = (
        "import json; from dit_demo.app import config, offered; from dit_demo.engine.request import DEFAULT_STEPS,"
        " DEFAULT_GUIDANCE; m = config.default_model(); print(json.dumps([m, offered.default_classes(m), 0, False,"
        " DEFAULT_STEPS, DEFAULT_GUIDANCE, 'dpm', config.DEFAULT_RECIPES, False]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, env=_env(root), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DIT_DEMO_MODEL", "SPACES_ZERO_GPU")}
    return env | {"PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}


def one_run(root: Path, request: list, *, importtime: bool) -> dict:
    """Spawn `python app.py`, poll its page until 200, ask `/generate` once, stop it; seconds from the spawn."""
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "app.py", "--port", str(port)]
    record = {"load_before": load()}
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=root, env=_env(root), stdout=log, stderr=log, text=True)
        try:
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"app.py exited ({proc.returncode}):\n{log.read()[-3000:]}")
                try:
                    if httpx.get(url, timeout=30).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            record["first_200_s"] = round(time.perf_counter() - start, 2)
            record["first_200_cpu_s"] = cpu_seconds(proc.pid)
            client = Client(url, verbose=False, httpx_kwargs={"timeout": 600})  # a busy machine answers slowly
            result = client.predict(*request, api_name="/generate")
            record["first_answer_s"] = round(time.perf_counter() - start, 2)
            record["first_answer_cpu_s"] = cpu_seconds(proc.pid)
            rows = result[1]["recipes"].values()
            record["answer_recipes"] = list(result[1]["recipes"])
            # the request's own timed sampling (every timed run of every recipe): part of the answer on any start
            record["answer_timed_sampling_s"] = round(
                sum(sum(r.get("latency_spread", {}).get("samples_s", [r["latency_s"]])) for r in rows), 2
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        log.seek(0)
        text = log.read()
    record["load_after"] = load()
    if importtime:
        record["imports_s"] = top_importers(text)
        for key in ("first_200_s", "first_answer_s", "first_200_cpu_s", "first_answer_cpu_s"):
            record[key + "_under_importtime"] = record.pop(key)
    return record


def top_importers(text: str) -> dict[str, float]:
    """Seconds per heavy package, each counted at its outermost import only (its cumulative time, dependencies
    included, not counted again inside another counted package, so they add up), plus all outermost imports."""
    totals: dict[str, float] = defaultdict(float)
    stack: list[tuple[int, str | None]] = []  # (depth, the counted package this line is inside of)
    for line in reversed(text.splitlines()):  # a parent is printed after its children
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        depth, package, seconds = len(match.group(3)) // 2, match.group(4).split(".")[0], int(match.group(2)) / 1e6
        while stack and stack[-1][0] >= depth:
            stack.pop()
        inside = stack[-1][1] if stack else None
        if inside is None and package in HEAVY_PACKAGES:
            totals[package] += seconds
            inside = package
        if depth == 0:
            totals["all imports"] += seconds
        stack.append((depth, inside))
    return {name: round(seconds, 2) for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values), "runs": len(values)}


def summarize(runs: list[dict]) -> dict:
    timed = [r for r in runs if "first_200_s" in r]
    traced = [r for r in runs if "imports_s" in r]
    packages = sorted({p for r in traced for p in r["imports_s"]})
    imports = {p: spread([r["imports_s"].get(p, 0.0) for r in traced]) for p in packages}
    return {
        "first_200_s": spread([r["first_200_s"] for r in timed]),
        "first_answer_s": spread([r["first_answer_s"] for r in timed]),
        "first_200_cpu_s": spread([r["first_200_cpu_s"] for r in timed]),
        "first_answer_cpu_s": spread([r["first_answer_cpu_s"] for r in timed]),
        "answer_timed_sampling_s": spread([r["answer_timed_sampling_s"] for r in timed]),
        "imports_s": dict(sorted(imports.items(), key=lambda kv: -kv[1]["median"])),
        "load": spread([r[k] for r in runs for k in ("load_before", "load_after")]),
    }


def measure(roots: dict[str, Path], runs: int) -> dict[str, dict]:
    """Every checkout once per round, in the same order (interleaved, so a busier minute hits all of them)."""
    requests = {name: first_request(root) for name, root in roots.items()}
    records: dict[str, list[dict]] = {name: [] for name in roots}
    for index in range(runs):
        for name, root in roots.items():
            for importtime in (False, True):
                records[name].append(one_run(root, requests[name], importtime=importtime) | {"round": index})
                print(name, json.dumps(records[name][-1]), flush=True)
    machine = {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version()}
    results = {}
    for name, root in roots.items():
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        results[name] = {
            "machine": machine,
            "commit": commit.stdout.strip(),
            "request": requests[name],
            "summary": summarize(records[name]),
            "runs": records[name],
        }
    return results


def table(data: dict) -> str:
    """The README table from results.json ({"checkouts": {name: result}}): one row per measured checkout."""
    results = data["checkouts"]
    lines = [
        "| checkout | page first 200 (s) | first answer (s) | app CPU time to first 200 (s) | app CPU time to first "
        "answer (s) | the request's own timed sampling (s) | top imports, median s (under -X importtime) | "
        "load avg (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        s = result["summary"]
        imports = ", ".join(f"{p} {v['median']:g}" for p, v in list(s["imports_s"].items())[:5])

        def cell(x: dict) -> str:
            return f"**{x['median']:g}** ({x['min']:g}–{x['max']:g}, {x['runs']} runs)"

        load_cell = f"{s['load']['min']:g}–{s['load']['max']:g}"
        lines.append(
            f"| {name} ({result['commit']}) | {cell(s['first_200_s'])} | {cell(s['first_answer_s'])} | "
            f"{cell(s['first_200_cpu_s'])} | {cell(s['first_answer_cpu_s'])} | {cell(s['answer_timed_sampling_s'])} | "
            f"{imports} | {load_cell} |"
        )
    first = next(iter(results.values()))["machine"]
    lines.append("")
    lines.append(f"Machine: {first['cpu']}, {first['cpus']} CPUs, Python {first['python']}.")
    return "\n".join(lines)


def render(results_path: Path, readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    body = table(json.loads(results_path.read_text(encoding="utf-8")))
    readme.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout whose app.py is measured")
    parser.add_argument("--name", default="serve first", help="this checkout's row in results.json")
    parser.add_argument("--baseline", type=Path, help="another checkout measured in the same rounds (interleaved)")
    parser.add_argument("--baseline-name", default="before (imports first)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--render", action="store_true", help="only rewrite README.md's table from --out")
    args = parser.parse_args()
    if not args.render:
        data = json.loads(args.out.read_text(encoding="utf-8")) if args.out.exists() else {"checkouts": {}}
        roots = {args.name: args.root.resolve()}
        if args.baseline:
            roots[args.baseline_name] = args.baseline.resolve()
        data["checkouts"].update(measure(roots, args.runs))
        args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    render(args.out, HERE / "README.md")


if __name__ == "__main__":
    main()
