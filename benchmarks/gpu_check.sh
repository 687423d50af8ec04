#!/usr/bin/env bash
# One short, prepared check for a GPU machine: <= 8 minutes with JAX and torch.
#
# From the repository root:
#
#     bash benchmarks/gpu_check.sh wheels   # HERE, with network: keras, namex,
#                                           # optree wheels into .whl/ (~3 MB)
#     bash benchmarks/gpu_check.sh          # THERE: the check, one summary table
#     ALLOW_CPU=1 QUICK=1 BACKENDS=torch bash benchmarks/gpu_check.sh   # try it on a CPU
#
# The GPU machines it is made for have Python 3.12 with jax, torch (CUDA),
# numpy and scipy, no TensorFlow, no keras and no network. When keras does
# not import, the script installs the wheels of $WHEELS (default .whl/)
# with pip --no-index into $SITE (default /tmp/keras_brnpa_site) and puts
# that folder on PYTHONPATH. `gpu_check.sh wheels` downloads them (pinned
# to the versions below, for CPython 3.12 on x86-64 Linux) on a machine
# with network; carry .whl/ along with the repository.
#
# For each backend in $BACKENDS (default: tensorflow jax torch) that imports
# AND sees a GPU (a backend that does not is skipped, the reason printed;
# ALLOW_CPU=1 runs a CPU-only backend anyway):
#   1. bench_train.py: ResNet-50 + BR-NPA, 224 px, batch 32, low and high
#      resolution, float32 and mixed_float16, JAX with XLA, torch eager,
#      the PyTorch reference (float32 and AMP) beside it, Keras / reference;
#   2. bench_explain.py: explain calls against one compiled forward pass,
#      ResNet-50 (keras.applications without keras-cv), 16 images;
#   3. the layer tests, tests/test_brnpa_attention.py.
# Then one summary table. Logs and the tables go to $OUT_DIR (default: $OUT
# or ./gpu_check_logs). The whole run stops starting steps after $BUDGET
# seconds (default 450); each step is cut at $STEP_TIMEOUT (default 240) or
# at what is left of the budget; a step not run is listed as such.
# QUICK=1: the benchmarks' --quick sizes and a few layer tests (seconds).
set -u

cd "$(dirname "$0")/.." || exit 1
KERAS_VERSION="${KERAS_VERSION:-3.15.1}"
NAMEX_VERSION="${NAMEX_VERSION:-0.1.0}"
OPTREE_VERSION="${OPTREE_VERSION:-0.20.0}"
WHEELS="${WHEELS:-.whl}"

if [ "${1:-}" = "wheels" ]; then
    # keras's other needs (absl-py, numpy, rich, h5py, ml-dtypes, packaging)
    # are on the GPU machines already.
    # WHEEL_PYTHON: the GPU machine's Python (optree is compiled per version).
    PIP_PYTHON="${PYTHON:-python3}"
    mkdir -p "$WHEELS"
    exec "$PIP_PYTHON" -m pip download --no-deps --only-binary=:all: \
        --python-version "${WHEEL_PYTHON:-3.12}" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" \
        "keras==$KERAS_VERSION" "namex==$NAMEX_VERSION" "optree==$OPTREE_VERSION"
fi

PYTHON="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PYTHON" ]; then PYTHON="$(command -v python3)"; fi
BACKENDS="${BACKENDS:-tensorflow jax torch}"
OUT_DIR="${OUT_DIR:-${OUT:-gpu_check_logs}}"
STEP_TIMEOUT="${STEP_TIMEOUT:-240}"
BUDGET="${BUDGET:-450}"
QUICK="${QUICK:-0}"
SITE="${SITE:-/tmp/keras_brnpa_site}"
mkdir -p "$OUT_DIR"
START=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# JAX and torch each keep their own GPU memory pool: do not let JAX take 75 %
# of the GPU up front, so that the torch reference process finds room.
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_FORCE_GPU_ALLOW_GROWTH=true

echo "# gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') python=$($PYTHON -V 2>&1) quick=$QUICK"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "--- keras is not installed: installing $(ls "$WHEELS"/*.whl | xargs -n1 basename | tr '\n' ' ')into $SITE"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$WHEELS"/*.whl || { echo "wheel install failed"; exit 1; }
        export PYTHONPATH="$PYTHONPATH:$SITE"
    else
        echo "keras does not import and $WHEELS/ holds no wheels: run 'bash benchmarks/gpu_check.sh wheels' on a machine with network first"
        exit 1
    fi
fi
echo "--- keras $("$PYTHON" -c 'import keras; print(keras.__version__)')"

SUMMARY=()
FAILED=0
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

# step <backend> <label> <log name> <summary grep> <command...>: runs within
# the budget, records the result, the time and the lines the grep selects.
step() {
    local backend="$1" label="$2" log="$OUT_DIR/$1_$3.log" pattern="$4"
    shift 4
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -le 10 ]; then
        add "$backend" "$label" "not run" "time budget (${BUDGET} s) spent"
        echo "--- $backend / $label: not run (budget spent)"
        return
    fi
    local limit=$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))
    local start status result detail
    start=$(date +%s)
    KERAS_BACKEND="$backend" timeout "$limit" "$@" >"$log" 2>&1
    status=$?
    result="ok"
    [ $status -eq 124 ] && result="TIMEOUT (${limit} s)"
    [ $status -ne 0 ] && [ $status -ne 124 ] && result="FAILED (rc=$status, see $log)"
    [ $status -ne 0 ] && FAILED=1
    detail=$(grep -E "$pattern" "$log" | tr '\n' ';' | tr '|' ' ' | tr -s ' ')
    add "$backend" "$label" "$result, $(($(date +%s) - start)) s" "${detail:0:700}"
    echo "--- $backend / $label: $result"
    grep -E '^(#|\|)' "$log" | head -n 40
}

if [ "$QUICK" = "1" ]; then
    TRAIN_ARGS=(--quick --resolutions low --no-reference)
    EXPLAIN_ARGS=(--quick)
    TEST_ARGS=(-k "numpy_reference")
else
    TRAIN_ARGS=(--backbone resnet50 --size 224 --batch 32 --steps 3 --precisions float32 mixed_float16)
    EXPLAIN_ARGS=(--backbone resnet50 --size 224 --images 16 --repeats 5 --score-cam-channels 8 --rise-masks 16)
    TEST_ARGS=()
    # 16 cores: spread the layer tests over 4 processes when pytest-xdist is there.
    "$PYTHON" -c "import xdist" 2>/dev/null && TEST_ARGS=(-n 4)
fi

for backend in $BACKENDS; do
    state=$(probe "$backend")
    if [ "$state" != "GPU" ] && [ "${ALLOW_CPU:-0}" = "1" ] && [ "${state#no GPU}" != "$state" ]; then
        echo "--- $backend: $state, running on CPU anyway (ALLOW_CPU=1)"
    elif [ "$state" != "GPU" ]; then
        echo "--- $backend: skipped (${state:-probe failed})"
        add "$backend" "all" "skipped" "${state:-probe failed}"
        continue
    fi
    # jit_compile: XLA on JAX (and TensorFlow); eager on torch (its
    # jit_compile=True is torch.compile, not XLA).
    jit=on
    [ "$backend" = torch ] && jit=off
    step "$backend" "bench_train (jit_compile=$jit)" train \
        '^\| (low|high) \||^\| Keras \(' \
        "$PYTHON" benchmarks/bench_train.py "${TRAIN_ARGS[@]}" --jit $jit
    step "$backend" "bench_explain (explain/forward)" explain \
        '^\| explain\.' \
        "$PYTHON" benchmarks/bench_explain.py "${EXPLAIN_ARGS[@]}"
    step "$backend" "tests/test_brnpa_attention.py" tests \
        '(passed|failed|error)' \
        "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_brnpa_attention.py "${TEST_ARGS[@]}"
done

echo
{
    echo "# gpu_check summary: $(($(date +%s) - START)) s in all"
    echo "| backend | check | result | detail |"
    echo "|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
} | tee "$OUT_DIR/summary.md"
exit $FAILED
