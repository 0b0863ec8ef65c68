"""Timings of the custom ops (torch_utils/ops) at StyleGAN2-generator sizes.

    python benchmarks/ops.py                 # CPU reference path (+ CUDA ref vs kernel if a GPU exists)
    python benchmarks/ops.py --threads 2 --repeats 10 --quick

On the CPU it times the reference path, and also the straightforward constructions that it
improves on ("naive": for upfirdn2d zero insertion + padding + one depthwise convolution at
full resolution + striding; for bias_act one new tensor per step). With a GPU it times the reference path and
the CUDA kernels on the GPU, in float32 and float16, forward and forward + backward.
Prints the machine and the date first; each figure is the median of --repeats runs, in ms.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch_utils.ops import _build  # noqa: E402
from torch_utils.ops.bias_act import bias_act  # noqa: E402
from torch_utils.ops.conv2d_resample import conv2d_resample  # noqa: E402
from torch_utils.ops.upfirdn2d import setup_filter, upfirdn2d  # noqa: E402


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timeit(fn, repeats, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def naive_upfirdn2d(x, f, up, down, pad):
    """Zero insertion, padding, a depthwise true convolution at full resolution, striding."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, pad)
    x = F.conv2d(x, f.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def naive_bias_act(x, b, alpha=0.2, gain=2 ** 0.5, clamp=256):
    """One new tensor per step: add the bias, activate, scale, clamp."""
    return (F.leaky_relu(x + b.reshape(1, -1, 1, 1), alpha) * gain).clamp(-clamp, clamp)


def cases(quick):
    s = 2 if quick else 1
    f = setup_filter([1, 3, 3, 1])
    yield ("bias_act lrelu+clamp [8,512,32,32]", "bias_act",
           lambda d, dt: (torch.randn(8, 512, 32, 32, device=d, dtype=dt), torch.randn(512, device=d, dtype=dt)),
           lambda x, b, impl: bias_act(x, b, act="lrelu", clamp=256, impl=impl), naive_bias_act)
    yield (f"bias_act lrelu+clamp [8,128,{128 // s},{128 // s}]", "bias_act",
           lambda d, dt: (torch.randn(8, 128, 128 // s, 128 // s, device=d, dtype=dt), torch.randn(128, device=d, dtype=dt)),
           lambda x, b, impl: bias_act(x, b, act="lrelu", clamp=256, impl=impl), naive_bias_act)
    r = 129 // s
    yield (f"upfirdn2d FIR 4x4 pad 1 [1,1024,{r},{r}] (after a transposed conv)", "upfirdn2d",
           lambda d, dt: (torch.randn(1, 1024, r, r, device=d, dtype=dt),),
           lambda x, impl: upfirdn2d(x, f.to(x.device), padding=1, gain=4, impl=impl),
           lambda x: naive_upfirdn2d(x, f.to(x.device) * 4, 1, 1, [1, 1, 1, 1]))
    r = 128 // s
    yield (f"upsample2d x2 [8,3,{r},{r}] (skip toRGB)", "upfirdn2d",
           lambda d, dt: (torch.randn(8, 3, r, r, device=d, dtype=dt),),
           lambda x, impl: upfirdn2d(x, f.to(x.device), up=2, padding=[2, 1, 2, 1], gain=4, impl=impl),
           lambda x: naive_upfirdn2d(x, f.to(x.device) * 4, 2, 1, [2, 1, 2, 1]))
    r = 256 // s
    yield (f"upsample2d x2 [8,3,{r},{r}]", "upfirdn2d",
           lambda d, dt: (torch.randn(8, 3, r, r, device=d, dtype=dt),),
           lambda x, impl: upfirdn2d(x, f.to(x.device), up=2, padding=[2, 1, 2, 1], gain=4, impl=impl),
           lambda x: naive_upfirdn2d(x, f.to(x.device) * 4, 2, 1, [2, 1, 2, 1]))
    r = 128 // s
    yield (f"downsample2d x2 [8,128,{r},{r}]", "upfirdn2d",
           lambda d, dt: (torch.randn(8, 128, r, r, device=d, dtype=dt),),
           lambda x, impl: upfirdn2d(x, f.to(x.device), down=2, padding=1, impl=impl),
           lambda x: naive_upfirdn2d(x, f.to(x.device), 1, 2, [1, 1, 1, 1]))
    r = 32 // s
    yield (f"conv2d_resample up=2 3x3 groups=4 [1,512,{r},{r}]->[1,512,{2 * r},{2 * r}]", "conv2d_resample",
           lambda d, dt: (torch.randn(1, 512, r, r, device=d, dtype=dt), torch.randn(512, 128, 3, 3, device=d, dtype=dt)),
           lambda x, w, impl: conv2d_resample(x, w, f.to(x.device), up=2, padding=1, groups=4, flip_weight=False, impl=impl))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="smaller tensors")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU timings when a GPU is present")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"machine: {platform.node()} | {cpu_name()} | {os.cpu_count()} CPUs | torch {torch.__version__} "
          f"| {torch.get_num_threads()} threads | load {os.getloadavg()[0]:.1f}")
    gpu = torch.cuda.is_available()
    if gpu:
        print(f"gpu: {torch.cuda.get_device_name(0)} | CUDA {torch.version.cuda}")
        t = time.perf_counter()
        plugin = _build.get_ops_plugin()
        print(f"CUDA ops plugin: {'ready' if plugin is not None else 'FAILED to build (reference path only)'} "
              f"({time.perf_counter() - t:.1f} s incl. build/load)")
    print(f"figures: median of {args.repeats} runs, milliseconds\n")

    if not gpu or not args.no_cpu:
        cpu = torch.device("cpu")
        print("CPU, float32                                                        ref fwd | ref fwd+bwd | naive fwd")
        for case in cases(args.quick):
            name, _, make, fn = case[:4]
            naive = case[4] if len(case) > 4 else None
            inputs = make(cpu, torch.float32)
            with torch.no_grad():
                t_fwd = timeit(lambda: fn(*inputs, "ref"), args.repeats, cpu)
                t_naive = timeit(lambda: naive(*inputs), args.repeats, cpu) if naive else None
            leaves = [t.clone().requires_grad_() for t in inputs]
            t_bwd = timeit(lambda: fn(*leaves, "ref").square().sum().backward(), max(1, args.repeats // 2), cpu)
            naive_s = f"{t_naive:9.2f}" if t_naive is not None else "        -"
            print(f"  {name:64s} {t_fwd:9.2f} | {t_bwd:11.2f} | {naive_s}")
        print()

    if gpu:
        dev = torch.device("cuda")
        for dt in (torch.float32, torch.float16):
            print(f"GPU, {str(dt).replace('torch.', '')}                                  ref fwd | cuda fwd | ref fwd+bwd | cuda fwd+bwd | max rel diff")
            for case in cases(False):
                name, _, make, fn = case[:4]
                inputs = make(dev, dt)
                with torch.no_grad():
                    t_ref = timeit(lambda: fn(*inputs, "ref"), args.repeats, dev)
                    t_cuda = timeit(lambda: fn(*inputs, "cuda"), args.repeats, dev)
                    a, b = fn(*inputs, "ref").float(), fn(*inputs, "cuda").float()
                    rel = ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()
                leaves = [t.clone().requires_grad_() for t in inputs]
                tb_ref = timeit(lambda: fn(*leaves, "ref").float().square().sum().backward(), args.repeats, dev)
                tb_cuda = timeit(lambda: fn(*leaves, "cuda").float().square().sum().backward(), args.repeats, dev)
                print(f"  {name:64s} {t_ref:8.3f} | {t_cuda:8.3f} | {tb_ref:11.3f} | {tb_cuda:12.3f} | {rel:.2e}")
            print()


if __name__ == "__main__":
    main()
