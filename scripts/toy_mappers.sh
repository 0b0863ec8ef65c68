#!/usr/bin/env bash
# Rebuild the bundled toy mappers from the bundled generator and conditioning CLIP:
#   pretrained/flow.safetensors         (conditional normalizing flow, the default method)
#   pretrained/cvae_mapper.safetensors  (the paper's CVAE mapper)
# Every step is a `main.py` command with a fixed seed; `train flow` / `train cvae-mapper`
# record the file, its sha256, the exact command, the seed and the pairs' generator/CLIP
# identities in pretrained/manifest.json.
#
#   scripts/toy_mappers.sh                 # defaults below
#   PYTHON=.venv/bin/python WORK=runs/toy_mappers PARTS=3 scripts/toy_mappers.sh
#
# Settings (environment): PYTHON (python), WORK (runs/toy_mappers: pairs folder and logs),
# PARTS (3: pair-sampling processes), N_PAIRS (196608: 192 shards of 1024), FLOW_STEPS (6000), CVAE_STEPS (3000),
# OUT (pretrained: where the two checkpoints go; the manifest is only written for pretrained/).
# The modality-gap settings (FLOW_GAP) were chosen by the comparison in README "Modality gap".
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
WORK=${WORK:-runs/toy_mappers}
PARTS=${PARTS:-3}
N_PAIRS=${N_PAIRS:-196608}
FLOW_STEPS=${FLOW_STEPS:-6000}
CVAE_STEPS=${CVAE_STEPS:-3000}
OUT=${OUT:-pretrained}
GENERATOR=${GENERATOR:-pretrained/stylegan2_toy64.safetensors}
CLIP=${CLIP:-pretrained/clip_cond.pt}
FLOW_ARCH=(--layers 4 --hidden 128 --bins 8 --context-dim 64)
FLOW_GAP=(--noise-scale 1.5 --no-modality-shift)
CVAE_ARCH=(--latent-dim 32 --hidden 256)
CVAE_GAP=(--noise-scale 0 --no-modality-shift)
SEED=0

mkdir -p "$WORK"
run() { echo "+ $*" >&2; "$@"; }
start=$(date +%s)

# 1. Latent pairs (z -> w -> image -> CLIP image embedding), PARTS processes on disjoint
#    shards, then one plain run that checks every shard and records them in meta.json.
PAIRS=(main.py pairs --generator "$GENERATOR" --clip "$CLIP" --n "$N_PAIRS" --out "$WORK/pairs"
       --seed "$SEED" --batch-size 64 --threads 1)
pids=()
for ((i = 0; i < PARTS; i++)); do
    run "$PYTHON" "${PAIRS[@]}" --part "$i/$PARTS" > "$WORK/pairs_part$i.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "pair sampling failed (see $WORK/pairs_part*.log)" >&2; exit 1; }; done
run "$PYTHON" "${PAIRS[@]}"
echo "pairs done after $(( $(date +%s) - start )) s" >&2

# 2. Both mappers at once (one thread each).
run "$PYTHON" main.py train flow --pairs "$WORK/pairs" --out "$OUT/flow.safetensors" --seed "$SEED" \
    --steps "$FLOW_STEPS" --batch-size 256 --lr 2e-3 --eval-every 1000 --threads 1 "${FLOW_ARCH[@]}" "${FLOW_GAP[@]}" \
    > "$WORK/flow.log" 2>&1 &
flow_pid=$!
run "$PYTHON" main.py train cvae-mapper --pairs "$WORK/pairs" --out "$OUT/cvae_mapper.safetensors" --seed "$SEED" \
    --steps "$CVAE_STEPS" --batch-size 256 --lr 1e-3 --eval-every 500 --threads 1 "${CVAE_ARCH[@]}" "${CVAE_GAP[@]}" \
    > "$WORK/cvae_mapper.log" 2>&1 &
cvae_pid=$!
wait "$flow_pid" || { tail -n 3 "$WORK/flow.log" >&2; exit 1; }
wait "$cvae_pid" || { tail -n 3 "$WORK/cvae_mapper.log" >&2; exit 1; }
tail -n 2 "$WORK/flow.log" "$WORK/cvae_mapper.log" | tr '\r' '\n' | grep -v '^train' >&2 || true

# 3. Note the whole recipe beside the training commands in the manifest.
if [ "$OUT" = pretrained ]; then
    "$PYTHON" - "${PAIRS[*]}" <<'PY'
import sys
from model.bundled import read_manifest, write_manifest
m = read_manifest()
for name in ("flow", "cvae-mapper"):
    m[name]["pairs_command"] = "python " + sys.argv[1]
    m[name]["rebuild"] = "scripts/toy_mappers.sh"
write_manifest(m)
PY
fi
echo "toy mappers rebuilt in $(( $(date +%s) - start )) s" >&2
