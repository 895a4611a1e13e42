#!/usr/bin/env bash
# The checks only a GPU can make, as one script for a short lease of a GPU machine (an H200 here):
#
#     OUT=DIR bash benchmark/tools/gpu_check.sh [SECONDS]        (from the repository root)
#
# 0. the floor: seconds to import torch and start the device, in a fresh process (in env.txt);
# 1. every oracle value on the GPU: the lineage and toolbox parity tests with their tensors on CUDA
#    (FUSIONBENCH_TEST_DEVICE=cuda), float64 and float32, and CUDA against the CPU;
# 2. the scoring alone of 1153 triples per metric set, images already on the GPU
#    (benchmark.tools.speed_metrics --device cuda --lineage SET --profile 12: each metric alone, all
#    together, then one batch under torch.profiler, its 12 costliest operators and its launch count);
# 3. `bench eval --device cuda` of 1153 PNG triples per metric set, end to end from a fresh process
#    (benchmark.tools.speed_lineages --device cuda);
# 4. the main command on the GPU (`bench run --models all --device cuda`, profile quick): every
#    fuser trained, fused and scored there; its tables come back as run.tgz;
# 5. each model's training and inference speed (benchmark.tools.speed_models --device cuda);
# 6. the rest of the oracle test files on CUDA.
# Each step writes its own log under $OUT (eight files in all, as many as the device tool brings back) and gets what is left of SECONDS (default 480), so that
# the whole script ends inside the lease; a step cut short says so in its log. The machine's image
# has torch but not FrEIA, diffusers, nibabel or nilearn: wheels of them in .whl/ (docs/speed.md,
# "On a GPU") are installed first when present.
set -u
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
BUDGET=${1:-480}
DEV=${GPU_CHECK_DEVICE:-cuda}
N=${GPU_CHECK_N:-1153}
# shellcheck disable=SC2206
RUN_ARGS=(${GPU_CHECK_RUN_ARGS:-}) # e.g. "--profile smoke" for a dry run of this script on a CPU
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
        export PYTHONPATH=$PYTHONPATH:/tmp/site
fi

left() { # seconds this step may take: at most $1, and what is left of the budget
    local l=$((BUDGET - SECONDS))
    ((l > $1)) && l=$1
    ((l < 1)) && l=1
    echo $l
}
step() { # step NAME MAX_SECONDS COMMAND...: run, log to $OUT/NAME.log, note its status and time
    local name=$1 max=$2 t=$SECONDS
    shift 2
    echo "== $name: $* (limit $(left "$max") s)" | tee -a "$OUT/$name.log"
    timeout "$(left "$max")" "$@" >> "$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: rc $rc in $((SECONDS - t)) s$([ $rc = 124 ] && echo ' (cut short by its limit)')" |
        tee -a "$OUT/$name.log"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
    nproc
} > "$OUT/env.txt" 2>&1
# the floor under any end-to-end time: a fresh process importing torch and starting CUDA
for _ in 1 2 3; do
    /usr/bin/env python3 -c "import time; t = time.perf_counter(); import torch; a = time.perf_counter() - t; \
torch.zeros(1, device='$DEV').sum().item(); print(f'import torch {a:.2f} s, + device start {time.perf_counter() - t:.2f} s')"
done >> "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

ORACLE_K="oracle_value or batch_of_8 or reference_float or cuda_matches"
ORACLE_FILES="tests/test_lineages.py tests/test_metrics_reference.py tests/test_metrics_properties.py"
# shellcheck disable=SC2086
step parity 200 env FUSIONBENCH_TEST_DEVICE="$DEV" python3 -m pytest -q -p no:cacheprovider $ORACLE_FILES -k "$ORACLE_K"
for s in liu cddfuse vifb mefb tang; do # tang last: the slowest set on an H200 (4.2 s together, 2026-12-04)
    step speed_metrics 150 python3 -m benchmark.tools.speed_metrics --device "$DEV" --n "$N" --chunk 72 --lineage $s \
        --profile 12
done
step speed_lineages 200 python3 -m benchmark.tools.speed_lineages --device "$DEV" --n "$N" --ref-n 0
step run 200 python3 -m benchmark run --models all --device "$DEV" --out /tmp/gpu-run "${RUN_ARGS[@]}"
tar -czf "$OUT/run.tgz" --exclude='*.pt' --exclude='fused' -C /tmp gpu-run 2> /dev/null
step speed_models 90 python3 -m benchmark.tools.speed_models --device "$DEV" --batch "${GPU_CHECK_BATCH:-paper}" \
    --steps "${GPU_CHECK_STEPS:-10}"
# shellcheck disable=SC2086
step parity_rest 120 env FUSIONBENCH_TEST_DEVICE="$DEV" python3 -m pytest -q -p no:cacheprovider $ORACLE_FILES -k "not ($ORACLE_K)"
echo "total $SECONDS s"
