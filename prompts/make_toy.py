"""Regenerate prompts/toy.jsonl: python prompts/make_toy.py [--data ../data/toy] [--n 120] [--seed 0].

120 prompts naming 1-4 rendered toy-face attributes in several wordings
(dataset.captions.prompt_for), including combinations the renderer never draws; with the
toy dataset, each line says whether any training image shows its combination
("unseen_combination").
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.evaluate import default_data_dir, make_toy_prompts  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=default_data_dir(), help="toy dataset folder (for the unseen-combination marks)")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "toy.jsonl"))
    a = ap.parse_args()
    print(make_toy_prompts(a.out, n=a.n, seed=a.seed, data=a.data))
