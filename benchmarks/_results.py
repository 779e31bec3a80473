"""Shared by the benchmark scripts: the machine's description and RESULTS.md sections.

Each benchmark owns one section of benchmarks/RESULTS.md, between
`<!-- BEGIN name -->` and `<!-- END name -->`; rerunning a benchmark replaces only its section.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
HEADER = "# Benchmark results\n\nEvery figure is a median, measured together with its anchor in the same run.\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = ", GPU: " + out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}{gpu}"


def median_time(fn, repeats=15, warmup=2, sync=None) -> float:
    """Median wall time of fn() in seconds; `sync` is called after each call (e.g. cuda sync)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `name` of RESULTS.md with `body` (markdown)."""
    text = open(RESULTS).read() if os.path.exists(RESULTS) else HEADER
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n<!-- END {name} -->"
    pat = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pat.sub(lambda m: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = RESULTS + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, RESULTS)
