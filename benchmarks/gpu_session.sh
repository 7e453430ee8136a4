#!/usr/bin/env bash
# The GPU checks and figures that issues 6 (Triton kernels) and 7 (vidseg-bench) still need, in steps that each
# fit one call of the device tool (10 minutes a command). Run from the repository root on the GPU machine:
#
#   benchmarks/gpu_session.sh STEP [OUT]      STEP: env | tests | kernels | bench | seeds | all
#
# OUT (default: $OUT, the device tool's folder that comes back) receives the logs, JSON and markdown.
# The GPU machines here have PyTorch, Triton, ONNX and ONNX Runtime but no PyAV, and nothing can be installed
# from the network there: carry PyAV as a wheel in .whl/ (git-ignored), made on the development machine with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl av==18.1.0
# and name `.whl` in the call's `carry`. vidseg itself runs from the checkout (PYTHONPATH), not installed.
set -euo pipefail

step=${1:?usage: benchmarks/gpu_session.sh env|tests|kernels|bench|seeds|all [OUT]}
out=${2:-${OUT:?give OUT or set \$OUT}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
site=/tmp/vidseg-site
if compgen -G ".whl/*.whl" >/dev/null && [ ! -d "$site" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=python3
bench() { "$py" -m vidseg.cli.bench "$@"; }

run_env() {
  { nvidia-smi; "$py" -c "import torch, triton, av, onnxruntime as ort; print(torch.__version__, torch.version.cuda,
torch.cuda.get_device_name(), 'triton', triton.__version__, 'av', av.__version__, 'ort', ort.__version__,
ort.get_available_providers())"; } 2>&1 | tee "$out/env.txt"
}

run_tests() {  # every CUDA-marked test: kernels against the reference, fp16 vs fp32, streams, CUDA graphs
  "$py" -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$out/cuda-tests.log"
}

run_kernels() {  # fused vs PyTorch at the seeds' shapes: time, bandwidth vs peak, extra memory, launch sweep
  "$py" benchmarks/kernels.py --device cuda --dtypes float32,float16 --sweep --out "$out/kernels" 2>&1 |
    tee "$out/kernels.log"
}

run_bench() {  # the default suite at 1024x2048: torch, compile, onnx, fp16; end to end; accuracy
  bench --suite default --device cuda --out "$out" 2>&1 | tee "$out/bench-default.log"
}

run_seeds() {  # the seeds' configurations, with their published frames/s beside ours
  bench --suite seeds --device cuda --no-accuracy --out "$out" 2>&1 | tee "$out/bench-seeds.log"
}

case "$step" in
  env) run_env ;;
  tests) run_env; run_tests ;;
  kernels) run_kernels ;;
  bench) run_bench ;;
  seeds) run_seeds ;;
  all) run_env; run_tests; run_kernels; run_bench; run_seeds ;;
  *) echo "unknown step $step: env | tests | kernels | bench | seeds | all" >&2; exit 2 ;;
esac
