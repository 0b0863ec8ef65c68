"""Throughput of StyleGAN2 training: images/s of full training iterations (G and D steps, lazy R1
and path-length phases amortised, EMA update), measured through the real training loop.

    python benchmarks/train_stylegan.py [--data DIR] [--batch-size 16] [--cbase 4096] [--cmax 128]
        [--threads 1] [--steps 24] [--warmup 4] [--device cpu]

Without --data it trains on a folder of random 64x64 images written to a temporary folder
(the speed does not depend on the pictures). Prints one line per configuration.

With ``--reference DIR`` (a checkout of NVlabs/stylegan2-ada-pytorch) each configuration is also
timed with NVIDIA's networks and loss driven as its training loop drives them
(``benchmarks/reference_train_speed.py``, a separate process), and the ratio is printed: the target
is the project's loop at least as fast as the reference on the same machine.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _random_folder(root: Path, n: int, res: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (res, res, 3), dtype=np.uint8)).save(root / f"{i:04d}.png")
    return root


@click.command()
@click.option("--data", default=None, help="Dataset folder (default: random images).")
@click.option("--res", default=64, show_default=True, type=int)
@click.option("--batch-size", default="16", show_default=True, help="Comma-separated list.")
@click.option("--cbase", default=4096, show_default=True, type=int)
@click.option("--cmax", default=128, show_default=True, type=int)
@click.option("--map-layers", default=2, show_default=True, type=int)
@click.option("--z-dim", default=128, show_default=True, type=int)
@click.option("--pl-weight", default=0.0, show_default=True, type=float)
@click.option("--threads", default="1", show_default=True, help="torch CPU threads, comma-separated list.")
@click.option("--steps", default=24, show_default=True, type=int, help="Timed iterations (a multiple of 16 covers R1 evenly).")
@click.option("--warmup", default=4, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
@click.option("--reference", default=None, type=click.Path(file_okay=False, exists=True),
              help="Checkout of NVlabs/stylegan2-ada-pytorch: also time its networks and loss (CPU).")
def main(data, res, batch_size, cbase, cmax, map_layers, z_dim, pl_weight, threads, steps, warmup, device, reference):
    import torch

    from model.train_stylegan import StyleGANTrainConfig, train_stylegan

    if reference and device != "cpu":
        raise click.UsageError("--reference compares on the CPU (NVIDIA's loop needs CUDA; this driver runs its parts on the CPU)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if data is None:
            (tmp / "imgs").mkdir()
            data = str(_random_folder(tmp / "imgs", 64, res))
        print(f"# {platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()} "
              f"torch {torch.__version__} device={device} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        for th in [int(t) for t in threads.split(",")]:
            for bs in [int(b) for b in batch_size.split(",")]:
                stamps: list[float] = []

                def hook(step, nimg):
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    stamps.append(time.perf_counter())

                cfg = StyleGANTrainConfig(data=data, out=str(tmp / f"run_{th}_{bs}"), res=res, kimg=(steps + warmup) * bs / 1000,
                                          batch_size=bs, cbase=cbase, cmax=cmax, map_layers=map_layers, z_dim=z_dim,
                                          w_dim=z_dim, pl_weight=pl_weight, snap_kimg=1e9, threads=th, device=device,
                                          progress=False)
                train_stylegan(cfg, _hook=hook)
                dt = stamps[-1] - stamps[warmup - 1]
                ips = steps * bs / dt
                print(f"res={res} batch={bs} cbase={cbase} cmax={cmax} map={map_layers} z=w={z_dim} pl={pl_weight} "
                      f"threads={th}: {ips:.2f} img/s ({dt / steps * 1000:.0f} ms/iteration, {1000 / ips:.0f} s/kimg)", flush=True)
                if reference:
                    cmd = [sys.executable, str(Path(__file__).with_name("reference_train_speed.py")), "--reference", reference,
                           "--res", str(res), "--batch-size", str(bs), "--cbase", str(cbase), "--cmax", str(cmax),
                           "--map-layers", str(map_layers), "--z-dim", str(z_dim), "--gamma", str(cfg.gamma),
                           "--mbstd-group", str(cfg.mbstd_group), "--lr", str(cfg.lr), "--threads", str(th), "--pl-weight", str(pl_weight),
                           "--steps", str(steps), "--warmup", str(warmup)]
                    out = subprocess.run(cmd, capture_output=True, text=True, cwd=reference)
                    if out.returncode:
                        raise click.ClickException(f"reference run failed: {(out.stderr or out.stdout).strip().splitlines()[-1]}")
                    ref_ips = float(out.stdout.split("reference:")[1].split()[0])
                    print(f"  NVIDIA reference, same configuration, threads={th}: {ref_ips:.2f} img/s -> project / reference = "
                          f"{ips / ref_ips:.2f} (target >= 1: {'met' if ips >= ref_ips else 'NOT met'})", flush=True)


if __name__ == "__main__":
    main()
