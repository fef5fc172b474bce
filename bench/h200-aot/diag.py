"""Why did loading an AOTInductor package in a fresh process crash or hang on the H200? One load per process.

    python -X faulthandler bench/h200-aot/diag.py PACKAGE.pt2 [cuda-first] [probe]

Loads the package (weights outside: nothing is run), lists the weights it needs and prints one DIAG line with the
load time. A Python stack is dumped after 25 s if the load has not returned. Run 1 (2026-12-03, log in
bench/h200-aot/README.md): a weights-inside bf16 package segfaulted (rc 139) after ~50 s in every case — diffusers
imported first, CUDA initialised first, torch alone — and a weights-outside package did not load within 75 s.
Run 2: the stack dump shows where: `aoti_load_package` → `get_device_information` → `pick_vec_isa` waiting on a child
`python -c "import torch; cdll.LoadLibrary(probe.so)"`; without `probe` this loads the way the project does.
"""

import faulthandler
import sys
import time
from pathlib import Path

package = Path(sys.argv[1])
if "cuda-first" in sys.argv[2:]:
    import torch

    torch.zeros(1, device="cuda")
import torch  # noqa: E402

faulthandler.dump_traceback_later(25, exit=False)
start = time.perf_counter()
if "probe" in sys.argv[2:]:  # torch's own entry point, with its CPU vector-ISA probe (hung in run 2)
    model = torch._inductor.aoti_load_package(str(package))
else:  # what dit_demo.engine.fast.aot.load_package does: AOTInductor's loader without the probe
    from dit_demo.engine.fast.aot import open_package

    model = open_package(package, single_threaded=False)
load_s = time.perf_counter() - start
needed = model.get_constant_fqns()
print(f"DIAG {package.name} loaded load_s={load_s:.2f} constants={len(needed)}", flush=True)
