"""1 vs 2 CPU threads for the embedded digits DiT's sampling, interleaved (engine.timing): the measurement behind
`dit_demo.engine.threads`. Run: `python bench/cpu-threads/measure.py [--steps 10] [--rounds 5]`; prints JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch

from dit_demo.engine.generate import build_reference, generate
from dit_demo.engine.request import SamplingRequest
from dit_demo.engine.threads import use_threads
from dit_demo.engine.timing import interleaved, machine_load, speed_verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    reference = build_reference("embedded", device="cpu")
    reference.pipe.set_progress_bar_config(disable=True)
    request = SamplingRequest.create(list(range(args.batch)), seed=0, steps=args.steps)

    def sampled(threads: int):
        def run() -> None:
            with use_threads(threads):
                generate(reference, request)

        return run

    load_before = machine_load()
    spreads = interleaved({"1 thread": sampled(1), "2 threads": sampled(2)}, rounds=args.rounds, warmup_rounds=1)
    verdict = speed_verdict(spreads["1 thread"], spreads["2 threads"])
    per_step = {
        name: {
            "median": round(1000 * s.median / args.steps, 1),
            "min": round(1000 * s.low / args.steps, 1),
            "max": round(1000 * s.high / args.steps, 1),
            "runs": s.runs,
        }
        for name, s in spreads.items()
    }
    machine = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    machine.update(torch=torch.__version__, load_before=load_before, load_after=machine_load())
    record = {"machine": machine, "steps": args.steps, "batch": args.batch, "ms_per_step_incl_decode": per_step}
    record["2 threads vs 1"] = verdict.phrase("1 thread")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
