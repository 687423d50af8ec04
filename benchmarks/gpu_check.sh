#!/usr/bin/env bash
# One short, prepared check for a GPU machine (XLA on GPU).
#
# From the repository root, with a virtualenv at .venv (or PYTHON=...):
#
#     bash benchmarks/gpu_check.sh            # everything, ~5-10 min
#     BACKENDS="jax" bash benchmarks/gpu_check.sh
#
# For each backend in $BACKENDS (default: tensorflow jax torch) that can be
# imported AND sees a GPU, it runs tests/test_brnpa_attention.py and the
# benchmarks' --quick modes with XLA (bench_layer's compiled rows,
# bench_train --jit on: jit_compile=True), then prints one summary table.
# A backend that cannot be imported, or that only sees a CPU, is skipped
# and the reason is printed (install e.g. `pip install "jax[cuda12]"`,
# `pip install "tensorflow[and-cuda]"`, a CUDA build of torch). Nothing is
# installed by this script. Logs go to $OUT_DIR (default: $OUT or
# ./gpu_check_logs). ALLOW_CPU=1 runs the checks on a CPU-only backend
# too (to try the script itself).
set -u

cd "$(dirname "$0")/.." || exit 1
PYTHON="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PYTHON" ]; then PYTHON="$(command -v python3)"; fi
BACKENDS="${BACKENDS:-tensorflow jax torch}"
OUT_DIR="${OUT_DIR:-${OUT:-gpu_check_logs}}"
STEP_TIMEOUT="${STEP_TIMEOUT:-300}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Let JAX and TensorFlow share the GPU with each other's leftovers.
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true

echo "# gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') python=$($PYTHON -V 2>&1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

SUMMARY=()
add() { SUMMARY+=("| $1 | $2 | $3 | $4 |"); }

# Prints "GPU" when the backend imports and sees an accelerator, else why not.
probe() {
    KERAS_BACKEND="$1" timeout 120 "$PYTHON" - <<'EOF' 2>/dev/null | tail -n 1
import os
backend = os.environ["KERAS_BACKEND"]
try:
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
    elif backend == "jax":
        import jax
        gpus = [d for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
    else:
        import torch
        gpus = list(range(torch.cuda.device_count()))
    import keras  # noqa: F401
    print("GPU" if gpus else "no GPU visible to " + backend)
except Exception as error:  # ImportError, missing CUDA libraries, ...
    print(f"not importable: {type(error).__name__}: {str(error)[:120]}")
EOF
}

# run <backend> <label> <log name> <command...>: runs, records pass/fail and time.
run() {
    local backend="$1" label="$2" log="$OUT_DIR/$1_$3.log"
    shift 3
    local start end status
    start=$(date +%s)
    KERAS_BACKEND="$backend" timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1
    status=$?
    end=$(date +%s)
    local result="ok"
    [ $status -eq 124 ] && result="TIMEOUT (${STEP_TIMEOUT}s)"
    [ $status -ne 0 ] && [ $status -ne 124 ] && result="FAILED (rc=$status, see $log)"
    local detail
    detail=$(grep -E "passed|failed|target|share|PyTorch eager reference =" "$log" | tail -n 2 | tr '\n' ' ' | tr '|' '/')
    add "$backend" "$label" "$result, $((end - start)) s" "${detail:0:160}"
    echo "--- $backend / $label: $result"
    grep -E '^\|' "$log" | head -n 20
}

for backend in $BACKENDS; do
    state=$(probe "$backend")
    if [ "$state" != "GPU" ] && [ "${ALLOW_CPU:-0}" = "1" ] && [ "${state#no GPU}" != "$state" ]; then
        echo "--- $backend: $state, running on CPU anyway (ALLOW_CPU=1)"
    elif [ "$state" != "GPU" ]; then
        echo "--- $backend: skipped (${state:-probe failed})"
        add "$backend" "all" "skipped" "${state:-probe failed}"
        continue
    fi
    run "$backend" "tests/test_brnpa_attention.py" tests \
        "$PYTHON" -m pytest -q tests/test_brnpa_attention.py
    run "$backend" "bench_layer --quick (eager + XLA)" layer \
        "$PYTHON" benchmarks/bench_layer.py --quick $([ "$backend" = torch ] && echo "--step-jit off" || echo "--step-jit on")
    run "$backend" "bench_explain --quick" explain \
        "$PYTHON" benchmarks/bench_explain.py --quick
    if [ "$backend" = "torch" ]; then
        # jit_compile=True is torch.compile on torch, not XLA.
        run "$backend" "bench_train --quick (eager)" train \
            "$PYTHON" benchmarks/bench_train.py --quick --jit off --precisions float32 mixed_float16
    else
        run "$backend" "bench_train --quick (jit_compile=True)" train \
            "$PYTHON" benchmarks/bench_train.py --quick --jit on --precisions float32 mixed_float16 --no-reference
    fi
done

echo
echo "| backend | check | result | detail |"
echo "|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
