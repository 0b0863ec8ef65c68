"""Per-stage CPU times of one text-to-face call with the bundled toy models (flow mapper).

Prints the median time of tokenizing, text encoding (tokenizing included), the flow's context
network, flow sampling, G synthesis and the whole pipeline call, for B prompts x 1 image, next to
the library routes the project's own replace: ``clip.tokenize`` + ``model.encode_text`` (all 77
positions) and zuko's spline-coupling inverse. All stages alternate within each timed round.

    OMP_NUM_THREADS=1 python benchmarks/generate_stages.py --batch 16 --repeats 30
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import _interleaved  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16, help="prompts per call (one image each)")
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per stage (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--compile", action="store_true", help="torch.compile the generator, CLIP and flow first (model/accel.py)")
    args = ap.parse_args()

    import clip
    import torch

    from model.clip_io import encode_text, tokenize
    from model.mapper import broadcast_w
    from model.pipelines import build_pipeline

    torch.set_num_threads(args.threads)
    pipe = build_pipeline("flow", compile=args.compile)
    prompts = (["a smiling woman with blond hair", "a bald man with eyeglasses"] * args.batch)[: args.batch]

    with torch.no_grad():
        e = encode_text(pipe.clip, prompts, progress=False)
        gen = torch.Generator().manual_seed(0)
        ws = broadcast_w(pipe.mapper.sample(e, 1, 1.0, generator=gen), pipe.G.num_ws)
        c = pipe.mapper._ctx(e)
        u = torch.randn(len(prompts), pipe.mapper.w_dim, generator=gen)
        rows = {
            "tokenize": lambda: tokenize(pipe.clip, prompts),
            "  clip.tokenize": lambda: clip.tokenize(prompts),
            "text encoding (tokenizing included)": lambda: encode_text(pipe.clip, prompts, progress=False),
            "  clip.tokenize + model.encode_text": lambda: pipe.clip.encode_text(clip.tokenize(prompts)),
            "flow context network": lambda: pipe.mapper._ctx(e),
            f"flow inverse ({len(pipe.mapper.transforms)} coupling layers)": lambda: pipe.mapper._inverse_ctx(u, c),
            "  the same through zuko's transforms": lambda: pipe.mapper._inverse_ctx_zuko(u, c),
            "flow sampling (context included)": lambda: pipe.mapper.sample(e, 1, 1.0, generator=gen),
            "G synthesis": lambda: pipe.G.synthesis(ws, noise_mode="const"),
            "whole pipeline call": lambda: pipe.generate(prompts, 1, seed=0, batch_size=args.batch),
        }
        ts = _interleaved(rows, args.repeats, lambda: None)
    print(f"{args.batch} prompts x 1 image, {args.threads} torch thread(s), {'compiled' if args.compile else 'eager'}, median of {args.repeats} rounds "
          f"(indented rows: the library route the row above replaces)")
    for name, t in ts.items():
        print(f"{name:40s} {1000 * statistics.median(t):8.2f} ms")


if __name__ == "__main__":
    main()
