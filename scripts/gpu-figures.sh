#!/bin/bash
# Every GPU figure of issue 23 in one run of under 8 minutes, logs and JSON under $OUT.
#
# On the GPU machine (../shared/device/README.md: make-wheels.sh first, then take .whl/ along):
#   OUT=/some/folder bash .whl/gpu-env.sh bash scripts/gpu-figures.sh
# Here, on a CPU, every step at the smoke size, so the script cannot rot (tests/test_gpu_figures.py):
#   GPU_FIGURES_TINY=1 OUT=/tmp/figures bash scripts/gpu-figures.sh
# Only print the commands:   GPU_FIGURES_DRY_RUN=1 OUT=/tmp/figures bash scripts/gpu-figures.sh
#
# The steps, most needed first; each has its own `timeout` (SIGINT first: the harness stops
# cleanly), and a step that would not fit in what is left of the budget is skipped, not started:
#   1. profile-auto: `profile --synthetic-inputs` at the paper input (1025 x 1320), 6 epochs,
#      512 clips, with the feed `auto` chooses: harness and bare steady s/epoch, compile time,
#      GPU busy fraction (NVML), per network;
#   2. run-default: `run --all --backend jax` on the default experiment, seed 0 (two units'
#      processes overlap: the log must hold no out-of-memory line), its wall time;
#   3. precision-*: fcnn (the network whose loss became NaN in float16) and cnn2d at the paper
#      input under each mixed-precision setting the harness accepts, harness alone, 3 epochs;
#   4. feed-*: each other feed the harness offers, fcnn and cnn2d, harness alone, 4 epochs;
#   5. run-default-rest: seeds 1 and 2 of the default run (with 2: the default run's wall time).
# Then summary.md (scripts/gpu_figures_summary.py) gathers the figures for the README.
set -u
OUT=${OUT:?set OUT to the folder for the logs and JSON}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
TINY=${GPU_FIGURES_TINY:-}
# Seconds for every step together (start-up and the summary fit in the rest of 8 minutes); a
# shared CPU runs even the smoke size slower than a GPU runs the paper's: no budget to speak of.
BUDGET=${GPU_FIGURES_BUDGET:-$([ -n "$TINY" ] && echo 3600 || echo 450)}
SCALE=$([ -n "$TINY" ] && echo 6 || echo 1)  # each step's own limit, times this
DRY=${GPU_FIGURES_DRY_RUN:-}
BACKEND=${KERAS_BACKEND:-jax}
export KERAS_BACKEND=$BACKEND GENRE_BENCHMARK_CACHE=${GENRE_BENCHMARK_CACHE:-/tmp/gbcache} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p "$OUT"
STORE=$(mktemp -d)  # the runs' tracking store: measurements, not results to keep
STEPS="$OUT/steps.tsv"
printf 'step\texit\tseconds\tcommand\n' > "$STEPS"
started=$(date +%s)

if [ -n "$TINY" ]; then  # the smoke size: each step as on the GPU, in seconds on a CPU
  PROFILE=(--experiment smoke --epochs 2 --clips 8 --models fcnn --set model.fcnn.units=32 --set model.fcnn.n_layers=1)
  TWO_MODELS=(--models fcnn --set model.fcnn.units=32 --set model.fcnn.n_layers=1)
  RUN=(--experiment smoke --model fcnn --set model.fcnn.units=32 --set model.fcnn.n_layers=1)
  REST_SEEDS=(1)
else
  PROFILE=(--experiment paper --epochs 6 --clips 512)
  TWO_MODELS=(--models fcnn cnn2d)
  RUN=(--experiment default --all)
  REST_SEEDS=(1 2)
fi

# step NAME LIMIT MINIMUM COMMAND...: run COMMAND with a timeout of LIMIT seconds (less where the
# budget has less left), its output in $OUT/NAME.log; skipped where under MINIMUM seconds are left.
step() {
  local name=$1 limit=$(($2 * SCALE)) minimum=$3; shift 3
  local left=$((BUDGET - ($(date +%s) - started)))
  if [ -n "$DRY" ]; then
    echo "timeout --signal=INT --kill-after=15 $limit $* > $OUT/$name.log"
    printf '%s\tdry\t0\t%s\n' "$name" "$*" >> "$STEPS"; return 0
  fi
  if [ "$left" -lt "$minimum" ]; then
    echo "skipped $name: ${left}s of the budget left, it needs ${minimum}s" | tee "$OUT/$name.log"
    printf '%s\tskipped\t0\t%s\n' "$name" "$*" >> "$STEPS"; return 0
  fi
  [ "$limit" -gt $((left - 15)) ] && limit=$((left - 15))  # the kill after SIGINT fits too
  echo "$(date +%T) $name (at most ${limit}s): $*"
  local t0; t0=$(date +%s)
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" "$*" >> "$STEPS"
  echo "$(date +%T) $name: exit $rc after $(($(date +%s) - t0))s"
}

# The device, and its utilisation and memory every second for the whole script (as measured before).
if [ -z "$DRY" ] && command -v nvidia-smi > /dev/null; then
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv -l 1 \
    > "$OUT/nvidia-smi-samples.csv" 2>&1 &
  SAMPLER=$!
  trap 'kill $SAMPLER 2>/dev/null' EXIT
fi
[ -z "$DRY" ] && { git rev-parse HEAD 2>/dev/null; "$PYTHON" -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__)" 2>/dev/null; } > "$OUT/versions.txt"

harness=("$PYTHON" -m benchmark)
# One process for the four networks (start-up once); at 96af662's speed it took about 4 minutes.
step profile-auto 300 90 "${harness[@]}" profile --synthetic-inputs "${PROFILE[@]}" --backend "$BACKEND" \
  --no-progress --json "$OUT/profile-auto.json"
step run-default 150 60 "${harness[@]}" run "${RUN[@]}" --seeds 0 --backend "$BACKEND" --no-progress \
  --tracking-uri "sqlite:///$STORE/mlflow.db"

# Mixed precision: the settings this checkout accepts (false | "float16" | "bfloat16" | "auto", or a bool).
# float16 first: the setting whose loss became NaN at the paper input.
precisions=$("$PYTHON" - <<'PY' 2>/dev/null
from benchmark.config import load_experiment
for value in ("float16", "bfloat16", "auto"):
    try:
        load_experiment("smoke", [f"train.mixed_precision={value}"])
        print(value, end=" ")
    except Exception:
        pass
PY
)
[ -z "$precisions" ] && precisions="true"  # a checkout whose setting is still a bool
for precision in $precisions; do
  step "precision-$precision" 90 45 "${harness[@]}" profile --synthetic-inputs "${PROFILE[@]}" "${TWO_MODELS[@]}" \
    --epochs 3 --set "train.mixed_precision=$precision" --no-floors --backend "$BACKEND" --no-progress \
    --json "$OUT/profile-precision-$precision.json"
done

feeds=$("$PYTHON" -c "from benchmark.config import FEEDS; print(' '.join(f for f in FEEDS if f != 'auto'))" 2>/dev/null)
for feed in $feeds; do
  step "feed-$feed" 100 45 "${harness[@]}" profile --synthetic-inputs "${PROFILE[@]}" "${TWO_MODELS[@]}" \
    --epochs 4 --set "train.feed=$feed" --no-floors --backend "$BACKEND" --no-progress --json "$OUT/profile-feed-$feed.json"
done

step run-default-rest 150 90 "${harness[@]}" run "${RUN[@]}" --seeds "${REST_SEEDS[@]}" --backend "$BACKEND" \
  --no-progress --tracking-uri "sqlite:///$STORE/mlflow.db"

[ -z "$DRY" ] && "$PYTHON" "$(dirname "$0")/gpu_figures_summary.py" "$OUT" > "$OUT/summary.md" 2> "$OUT/summary.log"
rm -rf "$STORE"
echo "done in $(($(date +%s) - started))s: $OUT/summary.md"
