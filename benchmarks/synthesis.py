"""StyleGAN2 generator speed (images/s) for FFHQ-sized configurations with random weights.

    python benchmarks/synthesis.py                       # CPU: 256x256 and 1024x1024, batch 1 and 8
    python benchmarks/synthesis.py --device cuda         # GPU: float16 in the top 4 resolutions
    python benchmarks/synthesis.py --res 256 --batch 8 --modconv both --channels-last both

Configurations (the official ones): z = w = 512, 8 mapping layers, channel_max 512,
num_fp16_res 4, conv_clamp 256; channel_base 32768 at 1024x1024 (config-f), and 16384 at
256x256 (what the official 256x256 models, e.g. stylegan2-ada-pytorch's paper256 config, use).
Times cover mapping + synthesis with noise_mode='const' under torch.inference_mode(); each
setting gets one untimed warm-up call and is then repeated until ``--min-time`` seconds have
passed (at least one timed call). The machine, library versions and date are printed first.
Besides wall-clock images/s it prints the CPU seconds this process used per image, which
is the steadier figure on a machine shared with other jobs (see the printed load average).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from network.stylegan2 import Generator  # noqa: E402

CONFIGS = {
    256: dict(z_dim=512, w_dim=512, img_resolution=256, mapping_layers=8, channel_base=16384, channel_max=512,
              num_fp16_res=4, conv_clamp=256),
    1024: dict(z_dim=512, w_dim=512, img_resolution=1024, mapping_layers=8, channel_base=32768, channel_max=512,
               num_fp16_res=4, conv_clamp=256),
}


def machine_info(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = " load avg %.1f/%.1f/%.1f" % os.getloadavg()
    info = [f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"cpu {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}{load}",
            f"python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}"]
    if device == "cuda":
        info.append(f"gpu {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})")
    return "\n".join(info)


def parse_choice(s: str) -> list:
    return {"both": [False, True], "on": [True], "off": [False], "auto": [None]}[s]


def bench(G: Generator, batch: int, device: str, min_time: float, max_iters: int, **synth_kwargs) -> tuple[float, int, float]:
    """(images/s of wall time, timed calls, CPU seconds of this process per image)."""
    z = torch.randn([batch, G.z_dim], device=device)

    def run():
        ws = G.mapping(z, truncation_psi=1.0)
        img = G.synthesis(ws, noise_mode="const", **synth_kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        return img

    with torch.inference_mode():
        run()  # warm-up: allocator, oneDNN / cuDNN algorithm selection
        n, start, cpu0 = 0, time.perf_counter(), time.process_time()
        while True:
            run()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time or n >= max_iters:
                break
    return batch * n / elapsed, n, (time.process_time() - cpu0) / (batch * n)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", default="256,1024", help="comma-separated resolutions (256, 1024)")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds of timed calls per setting")
    ap.add_argument("--max-iters", type=int, default=20)
    ap.add_argument("--modconv", default="auto", choices=["auto", "both", "on", "off"],
                    help="fused modulated convolution (grouped conv per sample): auto = the network's default")
    ap.add_argument("--channels-last", default="auto", choices=["auto", "both", "on", "off"],
                    help="NHWC activations: auto = the network's default")
    ap.add_argument("--fp32", action="store_true", help="on CUDA: no float16 blocks")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda: CUDA is not available")
    print(machine_info(args.device), flush=True)
    print("network: StyleGAN2 generator, random weights, z=w=512, 8 mapping layers, channel_max 512, noise_mode const")
    for res in [int(r) for r in args.res.split(",")]:
        if res not in CONFIGS:
            sys.exit(f"error: --res {res}: choose from {sorted(CONFIGS)}")
        torch.manual_seed(0)
        G = Generator(**CONFIGS[res]).eval().requires_grad_(False).to(args.device)
        nparams = sum(p.numel() for p in G.parameters())
        print(f"\n{res}x{res}: channel_base {CONFIGS[res]['channel_base']}, {nparams / 1e6:.1f}M parameters", flush=True)
        for batch in [int(b) for b in args.batch.split(",")]:
            for fused in parse_choice(args.modconv):
                for cl in parse_choice(args.channels_last):
                    kw = dict(fused_modconv=fused, channels_last=cl, force_fp32=args.fp32)
                    ips, n, cpu = bench(G, batch, args.device, args.min_time, args.max_iters, **kw)
                    desc = f"modconv={'auto' if fused is None else ('fused' if fused else 'shared')}, " \
                           f"channels_last={'auto' if cl is None else cl}"
                    print(f"  batch {batch:2d}  {ips:8.3f} img/s  ({1000 / ips:8.1f} ms/img, {cpu:6.2f} CPU-s/img, {n} timed calls; {desc})",
                          flush=True)
        del G


if __name__ == "__main__":
    main()
