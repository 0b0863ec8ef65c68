"""Toy-face renderer speed: images/s of one process, and the time to write an N-image dataset.

    python benchmarks/render.py                 # 30,000 images with 2 workers into a temp folder
    python benchmarks/render.py --n 3000 --workers 1

Prints one line per figure; the machine's load average is printed too, because the
figures scale with the CPU time that other processes leave.
"""
from __future__ import annotations

import os
import resource
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
    t, c = time.perf_counter(), time.process_time()
    for i in range(single):
        toyfaces.render(0, i, jpeg=True)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"render+jpeg, 1 process, in memory: {single / dt:.0f} images/s wall ({1000 * dt / single:.2f} ms/image); "
          f"CPU time {1000 * dc / single:.2f} ms/image")
    out = keep or tempfile.mkdtemp(prefix="toyfaces_bench_")
    try:
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self0 = time.process_time()
        r = toyfaces.write_dataset(out, n, seed=0, workers=workers, progress=True)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) + (time.process_time() - self0)
        print(f"write_dataset n={n} workers={workers}: {r['seconds']:.1f} s wall, {r['images_per_s']:.0f} images/s; "
              f"CPU time {cpu:.1f} s = {1000 * cpu / n:.2f} ms/image -> on {workers} otherwise idle cores "
              f"about {cpu / max(1, workers):.0f} s ({n * max(1, workers) / cpu:.0f} images/s)")
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load_average_1min_after={load:.2f}")


if __name__ == "__main__":
    main()
