#!/usr/bin/env bash
# The ladder's GPU point (issue 17): profile cifar10-gpu (cifar10-long at the paper's full widths)
# trained and probed on one GPU, several training processes sharing it; every result the
# scorecard reads is written under $OUT/results and packed as $OUT/results-<profile>.tgz (unpack
# it into results/ and commit: `tar xzf results-cifar10-gpu.tgz -C results`). Run from the checkout:
#
#   REFINE_DATA_DIR=data OUT=/tmp/out bash bench/gpu_profile.sh
#
# REFINE_DATA_DIR: the folder holding cifar10/{train_10k,test}.npz (on the device machine copy
#   ../shared/data/cifar10 to data/cifar10, git-ignored, and carry `data`).
# GPU_PROFILE_PARTS: the book's parts to compute, comma-separated (default: main; all: main,sharing).
# GPU_PROFILE_WORKERS: training processes sharing the GPU (default 6).
# GPU_PROFILE_DRY=1: the smoke profile on the CPU, to test this script without a GPU.
# PYTHON: the interpreter (default python3: the device machine's, which has PyTorch, not papermill).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_profile_out}
mkdir -p "$OUT/results"
profile=cifar10-gpu
[ "${GPU_PROFILE_DRY:-0}" = 1 ] && profile=smoke
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 REFINE_RESULTS_DIR="$OUT/results"
export REFINE_CACHE_DIR=${REFINE_CACHE_DIR:-/tmp/refine-cache}
"${PYTHON:-python3}" - "$profile" "${GPU_PROFILE_PARTS:-main}" "${GPU_PROFILE_WORKERS:-6}" <<'PY' 2>&1 | tee "$OUT/gpu_profile.log"
import sys, time
from refine_utils import book
profile, parts, workers = sys.argv[1], tuple(sys.argv[2].split(",")), int(sys.argv[3])
start = time.time()
done = book.compute(profile, workers, parts)
print(f"{profile}: computed {', '.join(done)} in {time.time() - start:.0f} s")
PY
tar czf "$OUT/results-$profile.tgz" -C "$OUT/results" "$profile"
echo "wrote $OUT/results-$profile.tgz"
