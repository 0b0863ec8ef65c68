"""Toy-face renderer speed: images/s of one process, and the time to write an N-image dataset.

    python benchmarks/render.py                 # 30,000 images with 2 workers into a temp folder
    python benchmarks/render.py --n 3000 --workers 1

Prints one line per figure; the machine's load average is printed too, because the
figures scale with the CPU time that other processes leave.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset import toyfaces  # noqa: E402


@click.command()
@click.option("--n", default=30000, show_default=True, help="Images in the written dataset.")
@click.option("--workers", default=2, show_default=True)
@click.option("--single", default=500, show_default=True, help="Images rendered in memory for the one-process figure.")
@click.option("--keep", type=click.Path(), default=None, help="Write the dataset here instead of a temp folder (kept).")
def main(n, workers, single, keep):
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpus={os.cpu_count()} load_average_1min={load:.2f}")
    toyfaces.render(0, 0)  # warm up imports
    t = time.perf_counter()
    for i in range(single):
        toyfaces.render(0, i, jpeg=True)
    dt = time.perf_counter() - t
    print(f"render+jpeg, 1 process, in memory: {single / dt:.0f} images/s ({1000 * dt / single:.2f} ms/image)")
    out = keep or tempfile.mkdtemp(prefix="toyfaces_bench_")
    try:
        r = toyfaces.write_dataset(out, n, seed=0, workers=workers, progress=True)
        print(f"write_dataset n={n} workers={workers}: {r['seconds']:.1f} s, {r['images_per_s']:.0f} images/s")
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load_average_1min_after={load:.2f}")


if __name__ == "__main__":
    main()
