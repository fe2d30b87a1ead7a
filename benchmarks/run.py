"""Runs every benchmark in turn (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in (
    "kernels_bench.py",
    "pipeline_bench.py",
    "store_bench.py",
    "counter_bench.py",
    "sync_bench.py",
):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
