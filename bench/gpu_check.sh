#!/usr/bin/env bash
# The device check of issue 6: CUDA tests, the throughput table of every paper architecture
# (fast path vs reference, TFLOP/s vs the card's bf16 peak), a short real CIFAR-10 ResNet-110
# run that must reach a stated accuracy, and GPU-hours per figure. At most 8 minutes on one
# H100 (the Python driver keeps to a 450 s budget). Writes $OUT/gpu_check.json and
# $OUT/gpu_check.log. Run from anywhere in the checkout:
#
#   REFINE_DATA_DIR=data OUT=/tmp/out bash bench/gpu_check.sh
#
# REFINE_DATA_DIR: the folder holding cifar10/{train_10k,test}.npz (default: data, git-ignored;
#   on the device machine copy ../shared/data/cifar10 to data/cifar10 and carry `data`).
# GPU_CHECK_DRY=1: run everything on the CPU at toy sizes, to test this script without a GPU.
# PYTHON: the interpreter (default python3, the one holding PyTorch on the device machine).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
args=(--out "$OUT")
[ "${GPU_CHECK_DRY:-0}" = 1 ] && args+=(--dry)
"${PYTHON:-python3}" bench/gpu_check.py "${args[@]}" 2>&1 | tee "$OUT/gpu_check.log"
