#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py says what it measures): run it on a machine with an NVIDIA GPU, from the
# repository root, after scripts/bootstrap.sh (with TORCH_SPEC for a CUDA build) and `pip install bitsandbytes`.
# It writes the table with the GPU's name into docs/benchmarks.md and keeps the raw figures in bench/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
.venv/bin/python -c "import torch; assert torch.cuda.is_available(), 'this torch has no CUDA: install a CUDA build'"
.venv/bin/python -c "import bitsandbytes" 2>/dev/null || .venv/bin/pip install --quiet bitsandbytes
cd bench && ../.venv/bin/python gpu_check.py --json gpu_check.json --docs "$@"
