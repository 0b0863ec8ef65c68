#!/usr/bin/env bash
# The modality-gap comparison of README "Modality gap": flows trained on the same pairs as the
# bundled mappers with no correction and with Gaussian noise on e, each scored with and without
# the inference-time shift, plus the CVAE mapper and the unconditional generator, by
# `main.py eval` (classifier attribute accuracy, evaluation-CLIP score).
#
#   scripts/modality_gap.sh        # after scripts/toy_mappers.sh (reuses WORK/pairs)
#   WORK=runs/reproduce scripts/modality_gap.sh   # or on the pairs of a `reproduce --preset toy` run
#                                  # (copy its flow_plain.safetensors to gap_flow_s0.safetensors to reuse it)
#
# The bundled flow (noise scale BUNDLED_SCALE, trained by scripts/toy_mappers.sh with the same
# pairs, seed and steps) is that variant; SCALES are the other noise scales, trained here.
#
# Settings (environment): PYTHON, WORK (runs/toy_mappers), SCALES ("0 0.5 1.0 2.0"),
# BUNDLED_SCALE (1.5, the bundled flow's --noise-scale), FLOW_STEPS (6000),
# N_PER_PROMPT (4), RESULTS (WORK/modality_gap.json); GENERATOR, CLIP, CLIP_EVAL, CLASSIFIER
# default to the bundled models.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
WORK=${WORK:-runs/toy_mappers}
SCALES=${SCALES:-"0 0.5 1.0 2.0"}
BUNDLED_SCALE=${BUNDLED_SCALE:-1.5}
FLOW_STEPS=${FLOW_STEPS:-6000}
N_PER_PROMPT=${N_PER_PROMPT:-4}
RESULTS=${RESULTS:-$WORK/modality_gap.json}
GENERATOR=${GENERATOR:-pretrained/stylegan2_toy64.safetensors}
CLIP=${CLIP:-pretrained/clip_cond.pt}
CLIP_EVAL=${CLIP_EVAL:-pretrained/clip_eval.pt}
CLASSIFIER=${CLASSIFIER:-pretrained/classifier.safetensors}
CVAE=${CVAE:-pretrained/cvae_mapper.safetensors}
FLOW=${FLOW:-pretrained/flow.safetensors}
FLOW_ARCH=(--layers 4 --hidden 128 --bins 8 --context-dim 64)

[ -f "$WORK/pairs/meta.json" ] || { echo "no pairs in $WORK/pairs: run scripts/toy_mappers.sh first" >&2; exit 1; }
run() { echo "+ $*" >&2; "$@"; }

pids=()
models=(unconditional "flow=flow@$FLOW")
for s in $SCALES; do
    out="$WORK/gap_flow_s$s.safetensors"
    if [ ! -f "$out" ]; then
        run "$PYTHON" main.py train flow --pairs "$WORK/pairs" --out "$out" --seed 0 --steps "$FLOW_STEPS" \
            --batch-size 256 --lr 2e-3 --eval-every 1000 --threads 1 "${FLOW_ARCH[@]}" --noise-scale "$s" \
            > "$WORK/gap_flow_s$s.log" 2>&1 &
        pids+=($!)
    fi
    models+=("gap-noise$s=flow@$out+noshift" "gap-noise$s+shift=flow@$out+shift")
done
for p in "${pids[@]}"; do wait "$p" || { echo "a flow variant failed (see $WORK/gap_flow_s*.log)" >&2; exit 1; }; done
models+=("gap-noise$BUNDLED_SCALE=flow@$FLOW+noshift" "gap-noise$BUNDLED_SCALE+shift=flow@$FLOW+shift")
models+=("cvae-mapper=cvae-mapper@$CVAE+noshift" "cvae-mapper+shift=cvae-mapper@$CVAE+shift")

IFS=,
run "$PYTHON" main.py eval --model "${models[*]}" --prompts prompts/toy.jsonl --n-per-prompt "$N_PER_PROMPT" \
    --json "$RESULTS" --clip "$CLIP" --generator "$GENERATOR" --clip-eval "$CLIP_EVAL" --classifier "$CLASSIFIER" --seed 0
