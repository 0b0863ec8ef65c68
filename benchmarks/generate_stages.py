"""Per-stage CPU times of one text-to-face call with the bundled toy models (flow mapper).

Prints the median time of tokenizing, text encoding (tokenizing included), the flow's context
network, flow sampling, G synthesis and the whole pipeline call, for B prompts x 1 image.

    OMP_NUM_THREADS=1 python benchmarks/generate_stages.py --batch 16 --repeats 30
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import _median_time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16, help="prompts per call (one image each)")
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per stage (median)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()

    import torch

    from model.clip_io import encode_text, tokenize
    from model.mapper import broadcast_w
    from model.pipelines import build_pipeline

    torch.set_num_threads(args.threads)
    pipe = build_pipeline("flow")
    prompts = (["a smiling woman with blond hair", "a bald man with eyeglasses"] * args.batch)[: args.batch]

    def med(fn) -> float:
        return 1000 * _median_time(fn, args.repeats, lambda: None)

    with torch.no_grad():
        e = encode_text(pipe.clip, prompts, progress=False)
        gen = torch.Generator().manual_seed(0)
        ws = broadcast_w(pipe.mapper.sample(e, 1, 1.0, generator=gen), pipe.G.num_ws)
        rows = [
            ("tokenize", lambda: tokenize(pipe.clip, prompts)),
            ("text encoding (tokenizing included)", lambda: encode_text(pipe.clip, prompts, progress=False)),
            ("flow context network", lambda: pipe.mapper._ctx(e)),
            ("flow sampling (context included)", lambda: pipe.mapper.sample(e, 1, 1.0, generator=gen)),
            ("G synthesis", lambda: pipe.G.synthesis(ws, noise_mode="const")),
            ("whole pipeline call", lambda: pipe.generate(prompts, 1, seed=0, batch_size=args.batch)),
        ]
        print(f"{args.batch} prompts x 1 image, {args.threads} torch thread(s), median of {args.repeats}")
        for name, fn in rows:
            print(f"{name:40s} {med(fn):8.2f} ms")


if __name__ == "__main__":
    main()
