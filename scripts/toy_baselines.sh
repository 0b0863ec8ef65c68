#!/usr/bin/env bash
# Rebuild the bundled image baselines from the toy faces and the bundled conditioning CLIP:
#   pretrained/cvae.safetensors  (image CVAE conditioned on CLIP text embeddings of captions)
#   pretrained/gan.safetensors   (conditional GAN, the same conditioning)
# Each is an attribute-conditioned warm start (300 steps, skipped when its state exists) and then
# CLIP-text-conditioned training from it (`--init-from`) on the first 2,000 training images; the
# two trainings of a stage run side by side with one thread each. `train cvae/gan` record the
# bundled files in pretrained/manifest.json (command, seed, time, losses); this script adds the
# warm-start command and the steering figures, and redraws assets/baseline_{cvae,gan}.png.
# `reproduce --preset toy` runs the same commands in its own folder.
#
#   PYTHON=.venv/bin/python scripts/toy_baselines.sh
#
# Settings (environment): PYTHON (python), DATA (../data/toy), WORK (runs/toy_baselines: warm
# starts, run folders, logs), CLIP (pretrained/clip_cond.pt), STEPS (3000).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
DATA=${DATA:-../data/toy}
WORK=${WORK:-runs/toy_baselines}
CLIP=${CLIP:-pretrained/clip_cond.pt}
STEPS=${STEPS:-3000}
COMMON=(--batch-size 32 --threads 1 --snap-every 100 --seed 0)
declare -A ARCH=([cvae]="" [gan]="--ch 16")
# --sigma 1.0: with the default 0.1 the CVAE's latent carries everything and its decoder ignores
# the text (README, Baselines).
declare -A TRAIN=([cvae]="--kl-warmup 0 --sigma 1.0" [gan]="")

mkdir -p "$WORK"
run() { echo "+ $*" >&2; "$@"; }
waitall() { for p in "$@"; do wait "$p" || { echo "a training run failed (see $WORK/*.log)" >&2; exit 1; }; done; }
start=$(date +%s)

# 1. Attribute-conditioned warm starts.
pids=()
for k in cvae gan; do
    if [ ! -f "$WORK/${k}_attr/state.pt" ]; then
        # shellcheck disable=SC2086
        run "$PYTHON" main.py train "$k" --data "$DATA" --cond attr ${ARCH[$k]} --out "$WORK/${k}_attr.safetensors" \
            --run-dir "$WORK/${k}_attr" --steps 300 "${COMMON[@]}" > "$WORK/${k}_attr.log" 2>&1 &
        pids+=($!)
    fi
done
waitall "${pids[@]}"

# 2. CLIP-text conditioning from the warm starts, into pretrained/.
pids=()
for k in cvae gan; do
    rm -rf "$WORK/${k}_clip"
    # shellcheck disable=SC2086
    run "$PYTHON" main.py train "$k" --data "$DATA" --cond clip --clip "$CLIP" ${ARCH[$k]} --out "pretrained/$k.safetensors" \
        --run-dir "$WORK/${k}_clip" --init-from "$WORK/${k}_attr/state.pt" --max-images 2000 ${TRAIN[$k]} --steps "$STEPS" \
        "${COMMON[@]}" > "$WORK/${k}_clip.log" 2>&1 &
    pids+=($!)
done
waitall "${pids[@]}"

# 3. The warm-start commands and the steering figures in the manifest; the grids under assets/.
"$PYTHON" - "$DATA" "$WORK" "${COMMON[*]}" <<'PY'
import json, sys
from model.baselines import load_baseline, steering_accuracy
from model.bundled import bundled_path, read_manifest, write_manifest
from model.classifier import load_classifier
from model.clip_io import load_clip

data, work, common = sys.argv[1:4]
arch = {"cvae": "", "gan": " --ch 16"}
prompts = [json.loads(line) for line in open("prompts/toy.jsonl")]
classifier = load_classifier(str(bundled_path("classifier")))
clip_model = load_clip(str(bundled_path("clip")))
m = read_manifest()
for k in ("cvae", "gan"):
    m[k]["init_from_command"] = (f"python main.py train {k} --data {data} --cond attr{arch[k]} --out {work}/{k}_attr.safetensors "
                                 f"--run-dir {work}/{k}_attr --steps 300 {common}")
    m[k]["rebuild"] = "scripts/toy_baselines.sh"
    s = steering_accuracy(load_baseline(str(bundled_path(k))), classifier, prompts, n=4, seed=0, clip_model=clip_model)
    m[k]["metrics"]["attribute_accuracy_toy_prompts"] = round(s["accuracy"], 4)
    m[k]["metrics"]["attribute_accuracy_chance"] = round(s["chance"], 4)
    m[k]["metrics"]["steering_eval"] = ("steering_accuracy(n=4, seed=0) on prompts/toy.jsonl with the bundled classifier; "
                                        "chance = the same images scored against the next prompt's attributes")
    print(f"{k}: steering accuracy {s['accuracy']:.3f} (chance {s['chance']:.3f})")
write_manifest(m)
PY
P=("a smiling woman with blond hair" "a bald man with eyeglasses" "a man with black hair and a mustache" "a woman wearing a hat and red lipstick")
for k in cvae gan; do
    run "$PYTHON" main.py generate "${P[@]}" --model "$k" -n 8 --seed 0 --out "assets/baseline_$k.png"
done
echo "toy baselines rebuilt in $(( $(date +%s) - start )) s" >&2
