"""Speed of text-to-face generation and of latent-pair sampling, on the CPU by default.

    python benchmarks/generate.py [--batch 16] [--repeats 5] [--generator G] [--clip C] [--mapper M] [--device cpu]

Prints, in one run, with the machine and the date:
1. time(text encode + mapper + G) / time(G alone) for a batch of 16 images (target <= 1.10),
   once for 16 different prompts (16 texts encoded) and once for one prompt x 16 samples;
2. the rate of `main.py pairs` sampling (z -> w -> image -> CLIP image embedding -> shard file)
   relative to G forward + CLIP image encoding alone at the same batch size (target >= 90%).
Medians over ``--repeats`` rounds after one warm-up round; within a round the timed calls alternate
(G alone, then the pipeline), and each ratio is the median of the per-round ratios. Defaults: the bundled toy models.
With ``--ffhq 256`` (or 1024) it also times item 1 with an FFHQ-sized StyleGAN2 of random weights
(benchmarks/synthesis.py's configuration) and a flow of the default real-setting size on w = 512
(random weights; the speed does not depend on them), conditioned by the same CLIP: the toy
generator costs ~3 ms per image, so there the fixed cost of text encoding and the flow weighs far
more than it does beside a real generator.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project root (model/, benchmarks/, ...)

import torch  # noqa: E402

PROMPTS = [
    "a smiling woman with blond hair", "a man with a goatee and eyeglasses", "a bald man", "a woman wearing a hat",
    "a person with black hair and bangs", "a man with gray hair", "a woman wearing red lipstick", "a pale woman",
    "a smiling man with a mustache", "a woman with earrings", "a man with brown hair", "a woman with glasses",
    "a person with the mouth slightly open", "a woman with heavy makeup", "a bearded man", "a lady with bangs",
]


def _interleaved(fns: dict, repeats: int, sync) -> dict:
    """Times of every function, run in turn within each of ``repeats`` rounds (one warm-up round
    first): {name: [seconds per round]}. Alternating the functions makes a slow spell of a shared
    machine hit all of them alike, so per-round ratios are steadier than ratios of separate medians."""
    ts: dict = {k: [] for k in fns}
    for r in range(repeats + 1):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            if r:
                ts[k].append(time.perf_counter() - t0)
    return ts


def _median_ratio(num: list, den: list) -> float:
    return statistics.median(a / b for a, b in zip(num, den))


def ratio_lines(pipe, G, prompts, B, repeats, sync, dev) -> None:
    """Print time(text encode + mapper + G) / time(G alone), for B prompts x 1 and 1 prompt x B:
    the median over rounds of the per-round ratio (the three calls alternate within a round)."""
    from model.mapper import broadcast_w

    with torch.no_grad():
        ws = broadcast_w(pipe.mapper.sample(pipe.embed(prompts[:1]), B, 1.0, generator=torch.Generator().manual_seed(0)), G.num_ws).to(dev)
        ts = _interleaved({
            "G": lambda: G.synthesis(ws, noise_mode="const"),
            "full": lambda: pipe.generate(prompts, 1, seed=0, batch_size=B),
            "one": lambda: pipe.generate(prompts[:1], B, seed=0, batch_size=B),
        }, repeats, sync)
    t_g, t_full, t_one = (statistics.median(ts[k]) for k in ("G", "full", "one"))
    r_full, r_one = _median_ratio(ts["full"], ts["G"]), _median_ratio(ts["one"], ts["G"])
    print(f"G alone (synthesis of {B} w):                        {1000 * t_g:8.1f} ms")
    print(f"text encode + mapper + G, {B} prompts x 1 image:     {1000 * t_full:8.1f} ms  ratio {r_full:.3f}  "
          f"(target <= 1.10: {'met' if r_full <= 1.10 else 'NOT met'})")
    print(f"text encode + mapper + G, 1 prompt x {B} images:     {1000 * t_one:8.1f} ms  ratio {r_one:.3f}  "
          f"(target <= 1.10: {'met' if r_one <= 1.10 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--generator", default=None)
    ap.add_argument("--clip", default=None)
    ap.add_argument("--mapper", default=None)
    ap.add_argument("--model", default="flow", choices=["flow", "cvae-mapper"])
    ap.add_argument("--pairs-batches", type=int, default=4, help="batches written by the pair-sampling run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the generator, CLIP and flow first (model/accel.py; G alone is then the compiled G too; the --ffhq models stay eager)")
    ap.add_argument("--ffhq", type=int, default=0, choices=[0, 256, 1024],
                    help="also time text + mapper + G with an FFHQ-sized generator of this resolution (random weights)")
    a = ap.parse_args()

    from model.clip_io import clip_identity, encode_images
    from model.pairs import sample_pairs
    from model.pipelines import ModelCache, build_pipeline

    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    cache = ModelCache(dev, compile=a.compile)
    pipe = build_pipeline(a.model, clip=a.clip, generator=a.generator, mapper=a.mapper, device=dev, cache=cache)
    G, clip_model = pipe.G, pipe.clip
    B = a.batch
    prompts = (PROMPTS * ((B + len(PROMPTS) - 1) // len(PROMPTS)))[:B]

    print(f"text-to-face speed benchmark  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads, device {dev}")
    print(f"generator {G.img_resolution}x{G.img_resolution} (w_dim {G.w_dim}, num_ws {G.num_ws}); "
          f"CLIP input {clip_model.visual.input_resolution}px; mapper {a.model}; batch {B}; median of {a.repeats}")
    if a.compile:
        t0 = time.perf_counter()
        with torch.no_grad():  # compile every shape the timed calls use, outside the timing
            pipe.generate(prompts, 1, seed=0, batch_size=B)
            pipe.generate(prompts[:1], B, seed=0, batch_size=B)
        sync()
        print(f"torch.compile (generator, CLIP, flow): first calls {time.perf_counter() - t0:.1f} s, compilation included")

    ratio_lines(pipe, G, prompts, B, a.repeats, sync, dev)
    if a.ffhq:
        from benchmarks.synthesis import CONFIGS
        from model.pipelines import MapperPipeline
        from network.flow import ConditionalFlow
        from network.stylegan2 import Generator

        torch.manual_seed(0)
        big = Generator(**CONFIGS[a.ffhq]).eval().requires_grad_(False).to(dev)
        flow = ConditionalFlow(w_dim=big.w_dim, e_dim=int(clip_model.text_projection.shape[1])).eval().to(dev)
        print(f"FFHQ-sized generator {a.ffhq}x{a.ffhq} (random weights, z = w = 512, num_ws {big.num_ws}); "
              f"flow of the default size ({flow.config['layers']} coupling layers, hidden {flow.config['hidden']}); same CLIP")
        ratio_lines(MapperPipeline("flow", big, clip_model, flow, device=dev), big, prompts, B, a.repeats, sync, dev)

    # Pair sampling vs its unavoidable work (G forward + CLIP image encoding of the same number of
    # samples), alternating within each round as above.
    n = B * a.pairs_batches
    gen_id = str(a.generator or "bundled")
    clip_id = clip_identity(pipe.clip_name)
    with torch.no_grad():
        z = torch.randn(B, G.z_dim, generator=torch.Generator().manual_seed(0)).to(dev)

        def core():
            for _ in range(a.pairs_batches):
                img = G.synthesis(G.mapping(z, truncation_psi=1.0), noise_mode="const")
                encode_images(clip_model, img, batch_size=B, device=dev, progress=False)

        seeds = itertools.count()  # a fresh pair set per round

        def pairs():
            with tempfile.TemporaryDirectory() as d:
                sample_pairs(G, clip_model, d, n, generator_id=gen_id, clip_id=clip_id, batch_size=B, seed=next(seeds),
                             shard_size=max(n, 1024), device=dev, thumbnails=0, progress=False)

        ts = _interleaved({"core": core, "pairs": pairs}, max(1, a.repeats // 2), sync)
    rate_core = n / statistics.median(ts["core"])
    rate_pairs = n / statistics.median(ts["pairs"])
    frac = _median_ratio(ts["core"], ts["pairs"])
    print(f"G forward + CLIP image encode alone:                 {rate_core:8.1f} samples/s")
    print(f"pair sampling (`main.py pairs` code path, {n} pairs): {rate_pairs:8.1f} samples/s  = {100 * frac:.1f}% "
          f"(target >= 90%: {'met' if frac >= 0.90 else 'NOT met'})")


if __name__ == "__main__":
    main()
