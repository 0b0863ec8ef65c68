"""Training throughput of NVIDIA's reference StyleGAN2 code (stylegan2-ada-pytorch) on this machine,
in the configuration `benchmarks/train_stylegan.py` times for the project's own loop.

    python benchmarks/reference_train_speed.py --reference DIR [--batch-size 16] [--threads 1] ...

DIR is a checkout of https://github.com/NVlabs/stylegan2-ada-pytorch (its `dnnlib`, `torch_utils`
and `training` packages are imported from there; nothing of it is part of this project). NVIDIA's
`train.py` / `training_loop.py` require CUDA, so this script drives the same pieces its training loop
drives, in the same order: its `Generator`, `Discriminator` and `StyleGAN2Loss`, one `accumulate_gradients`
call per phase, the phase's Adam step (lazy-regularisation learning rate and betas, as
`training_loop.py` sets them), the gradient `nan_to_num`, then the G_ema update. Phases per iteration:
'Gboth' with path length off (G has no separate regularisation phase then; the project's loop also
takes one G step), or 'Gmain' and 'Greg' (path length, every 4th iteration) with ``--pl-weight`` > 0;
'Dmain'; and 'Dreg' (R1) every 16th iteration. No augmentation, float32 (no fp16 layers: the CPU has
none), real images drawn from random uint8 pictures in memory.

It runs as its own process and must not import this project (both have a `torch_utils` package);
`benchmarks/train_stylegan.py --reference DIR` runs it beside the project's loop and prints both.
Prints one line: ``reference: <images/s> img/s (<ms> ms/iteration)``.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cbase", type=int, default=1024)
    ap.add_argument("--cmax", type=int, default=64)
    ap.add_argument("--map-layers", type=int, default=2)
    ap.add_argument("--z-dim", type=int, default=128)
    ap.add_argument("--gamma", type=float, default=0.5, help="R1 weight (the project's default)")
    ap.add_argument("--pl-weight", type=float, default=0.0, help="path-length weight (0: off)")
    ap.add_argument("--mbstd-group", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.0025)
    ap.add_argument("--ema-kimg", type=float, default=None, help="default: 10 * batch / 32, as the project's loop")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    sys.path.insert(0, a.reference)
    import torch

    try:
        from torch_utils import misc
        from training.loss import StyleGAN2Loss
        from training.networks import Discriminator, Generator
    except ImportError as e:
        sys.exit(f"error: --reference {a.reference}: not a stylegan2-ada-pytorch checkout ({e})")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device("cpu")
    B, r1_interval = a.batch_size, 16
    G = Generator(z_dim=a.z_dim, c_dim=0, w_dim=a.z_dim, img_resolution=a.res, img_channels=3,
                  mapping_kwargs=dict(num_layers=a.map_layers),
                  synthesis_kwargs=dict(channel_base=a.cbase, channel_max=a.cmax, num_fp16_res=0, conv_clamp=256)).train().requires_grad_(False)
    D = Discriminator(c_dim=0, img_resolution=a.res, img_channels=3, channel_base=a.cbase, channel_max=a.cmax,
                      num_fp16_res=0, conv_clamp=256, epilogue_kwargs=dict(mbstd_group_size=a.mbstd_group)).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    loss = StyleGAN2Loss(device=dev, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, augment_pipe=None,
                         style_mixing_prob=0.9, r1_gamma=a.gamma, pl_weight=a.pl_weight)

    def adam(params, reg_interval):
        if reg_interval is None:
            return torch.optim.Adam(params, lr=a.lr, betas=(0.0, 0.99), eps=1e-8)
        ratio = reg_interval / (reg_interval + 1)
        return torch.optim.Adam(params, lr=a.lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)

    pl_interval = 4 if a.pl_weight > 0 else None
    opt_G, opt_D = adam(G.parameters(), pl_interval), adam(D.parameters(), r1_interval)
    g_phases = [("Gmain", G, opt_G, 1), ("Greg", G, opt_G, pl_interval)] if pl_interval else [("Gboth", G, opt_G, 1)]
    phases = g_phases + [("Dmain", D, opt_D, 1), ("Dreg", D, opt_D, r1_interval)]
    reals_u8 = torch.randint(0, 256, (64, 3, a.res, a.res), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ema_nimg = (a.ema_kimg if a.ema_kimg is not None else 10 * B / 32) * 1000
    cur_nimg, stamps = 0, []
    for it in range(a.warmup + a.steps):
        real = reals_u8[torch.randint(len(reals_u8), [B])].to(torch.float32) / 127.5 - 1
        real_c = torch.zeros([B, 0])
        for name, module, opt, interval in phases:
            if it % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            loss.accumulate_gradients(phase=name, real_img=real, real_c=real_c, gen_z=torch.randn([B, a.z_dim]),
                                      gen_c=torch.zeros([B, 0]), sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():  # G_ema, ramped up as in training_loop.py (ema_rampup 0.05)
            beta = 0.5 ** (B / max(min(ema_nimg, cur_nimg * 0.05), 1e-8))
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        cur_nimg += B
        stamps.append(time.perf_counter())
    dt = stamps[-1] - stamps[a.warmup - 1]
    ips = a.steps * B / dt
    print(f"reference: {ips:.2f} img/s ({dt / a.steps * 1000:.0f} ms/iteration)")


if __name__ == "__main__":
    main()
