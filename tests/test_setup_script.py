"""scripts/setup.sh: its choice of torch (keep / cuda / local / cpu-index), the pip commands it runs, and the
Chromium step of ``--dev`` (have / apt / none) for the browser tests.

Fast: fake ``python``, ``nvidia-smi``, ``apt-get``, ``id`` and ``chromium`` commands record what the script would
run, on a PATH without the machine's own (so a real chromium or apt-get is never found); two cases run the real
pip dry run of the ``local`` check against scratch wheel folders, from an interpreter without torch. Nothing is
installed and nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts" / "setup.sh"

FAKE_PYTHON = r"""#!/usr/bin/env bash
# "python" for the setup script: torch importable iff FAKE_TORCH=1; every pip call is logged; the local-wheel
# dry run succeeds iff FAKE_LOCAL=1; the PyTorch CPU index fails iff FAKE_CPU_INDEX_FAILS=1.
if [[ "$1" == "-c" ]]; then
  [[ "$2" == *"import torch"* && "${FAKE_TORCH:-0}" == 1 ]] && { echo 9.9.9; exit 0; }
  exit 1
fi
if [[ "$1" == "-m" && "$2" == "pip" ]]; then
  shift 2
  echo "pip $*" >> "$FAKE_LOG"
  [[ "$*" == *"--dry-run"* ]] && { [[ "${FAKE_LOCAL:-0}" == 1 ]]; exit $?; }
  [[ "$*" == *"download.pytorch.org"* && "${FAKE_CPU_INDEX_FAILS:-0}" == 1 ]] && exit 1
  exit 0
fi
exit 0
"""


# apt-get: logged, fails iff FAKE_APT_FAILS=1; id -u: $FAKE_UID (default 0, root)
FAKE_APT_GET = """#!/usr/bin/env bash
echo "apt-get $*" >> "$FAKE_LOG"
[[ "${FAKE_APT_FAILS:-0}" != 1 ]]
"""
FAKE_ID = """#!/usr/bin/env bash
[[ "$1" == "-u" ]] && echo "${FAKE_UID:-0}"
"""


def _fake_bin(tmp_path: Path, gpu: bool, chromium: bool = True, apt: bool = True) -> Path:
    bin_dir = tmp_path / "bin"
    if bin_dir.exists():
        shutil.rmtree(bin_dir)
    bin_dir.mkdir()
    (bin_dir / "python").write_text(FAKE_PYTHON)
    # present either way, so a real nvidia-smi on the test machine is never the one found
    (bin_dir / "nvidia-smi").write_text(f"#!/usr/bin/env bash\nexit {0 if gpu else 1}\n")
    (bin_dir / "id").write_text(FAKE_ID)
    if apt:
        (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    if chromium:
        (bin_dir / "chromium").write_text("#!/usr/bin/env bash\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def _tools(tmp_path: Path) -> Path:
    """The only real commands the script and the fakes need (not all of /usr/bin: it may hold a real chromium)."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("bash", "dirname"):
        if not (tools / name).exists():
            (tools / name).symlink_to(shutil.which(name))  # type: ignore[arg-type]
    return tools


def _run(tmp_path: Path, *args: str, gpu: bool = False, chromium: bool = True, apt: bool = True,
         **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = _fake_bin(tmp_path, gpu, chromium, apt)
    log = tmp_path / "pip.log"
    log.write_text("")
    full_env = {"PATH": f"{bin_dir}:{_tools(tmp_path)}", "HOME": str(tmp_path), "FAKE_LOG": str(log), **env}
    proc = subprocess.run(["bash", str(SETUP), *args], env=full_env, capture_output=True, text=True, timeout=60)
    return proc, log.read_text().splitlines()


@pytest.mark.parametrize(("env", "gpu", "plan"), [
    ({"FAKE_TORCH": "1"}, True, "keep"),
    ({"FAKE_TORCH": "0"}, True, "cuda"),
    ({"FAKE_TORCH": "0", "FAKE_LOCAL": "1"}, False, "local"),
    ({"FAKE_TORCH": "0", "FAKE_LOCAL": "0"}, False, "cpu-index"),
])
def test_print_plan_decides_without_installing(tmp_path: Path, env: dict[str, str], gpu: bool, plan: str) -> None:
    proc, pip_calls = _run(tmp_path, "--print-plan", gpu=gpu, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == plan
    assert all("--dry-run" in c for c in pip_calls)  # a plan installs nothing


def test_a_local_wheel_is_installed_with_its_dependencies_from_the_index(tmp_path: Path) -> None:
    """The regression of issue 18: `--no-index` made a bare machine fail on torch's own dependencies."""
    proc, pip_calls = _run(tmp_path, FAKE_LOCAL="1", ADE_TORCH_VERSION="2.13.0")
    assert proc.returncode == 0, proc.stderr
    assert pip_calls == [
        "pip install --dry-run --no-deps --no-index -q torch==2.13.0",
        "pip install torch==2.13.0",
        "pip install -q -e .[offline]",
    ]
    assert "installing torch 2.13.0 from a local wheel" in proc.stdout


def test_dev_extras_and_the_torch_version_override(tmp_path: Path) -> None:
    proc, pip_calls = _run(tmp_path, "--dev", FAKE_LOCAL="1", ADE_TORCH_VERSION="2.9.1")
    assert proc.returncode == 0, proc.stderr
    assert pip_calls[1:] == ["pip install torch==2.9.1", "pip install -q -e .[dev]"]


def test_kept_and_cuda_installs(tmp_path: Path) -> None:
    proc, pip_calls = _run(tmp_path, FAKE_TORCH="1")
    assert proc.returncode == 0 and "torch 9.9.9 already installed" in proc.stdout
    assert pip_calls == ["pip install -q -e .[offline]"]
    proc, pip_calls = _run(tmp_path, gpu=True)
    assert pip_calls == ["pip install torch>=2.2", "pip install -q -e .[offline]"]


def test_cpu_index_and_its_fallback(tmp_path: Path) -> None:
    proc, pip_calls = _run(tmp_path)
    assert proc.returncode == 0
    assert pip_calls[1] == ("pip install --retries 1 --timeout 30 torch --index-url "
                            "https://download.pytorch.org/whl/cpu") and len(pip_calls) == 3
    proc, pip_calls = _run(tmp_path, FAKE_CPU_INDEX_FAILS="1")
    assert proc.returncode == 0 and "could not be used" in proc.stderr
    assert pip_calls[2:] == ["pip install torch>=2.2", "pip install -q -e .[offline]"]


@pytest.mark.parametrize(("chromium", "uid", "apt", "browser"), [
    (True, "0", True, "have"), (False, "0", True, "apt"), (False, "1000", True, "none"), (False, "0", False, "none"),
])
def test_print_plan_with_dev_names_the_chromium_step(tmp_path: Path, chromium: bool, uid: str, apt: bool,
                                                     browser: str) -> None:
    proc, calls = _run(tmp_path, "--dev", "--print-plan", chromium=chromium, apt=apt, FAKE_TORCH="1", FAKE_UID=uid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["keep", f"browser: {browser}"]
    assert calls == []  # a plan installs nothing
    proc, _ = _run(tmp_path, "--print-plan", chromium=chromium, apt=apt, FAKE_TORCH="1", FAKE_UID=uid)
    assert proc.stdout.splitlines() == ["keep"]  # without --dev there is no browser step


def test_dev_installs_chromium_with_apt_as_root(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, "--dev", chromium=False, FAKE_TORCH="1")
    assert proc.returncode == 0, proc.stderr
    assert calls == ["pip install -q -e .[dev]", "apt-get update -qq", "apt-get install -y -qq chromium"]
    assert "installing chromium (apt-get)" in proc.stdout
    proc, calls = _run(tmp_path, chromium=False, FAKE_TORCH="1")  # not --dev: no browser step
    assert calls == ["pip install -q -e .[offline]"]


def test_dev_without_chromium_or_root_goes_on_and_says_so(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, "--dev", chromium=False, FAKE_TORCH="1", FAKE_APT_FAILS="1")
    assert proc.returncode == 0 and "could not be installed" in proc.stderr
    assert calls[1:] == ["apt-get update -qq"]
    proc, calls = _run(tmp_path, "--dev", chromium=False, FAKE_TORCH="1", FAKE_UID="1000")
    assert proc.returncode == 0 and "browser tests will be skipped" in proc.stderr
    assert calls == ["pip install -q -e .[dev]"]
    proc, calls = _run(tmp_path, "--dev", FAKE_TORCH="1")
    assert proc.returncode == 0 and "chromium found" in proc.stdout and calls == ["pip install -q -e .[dev]"]


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    proc, pip_calls = _run(tmp_path, "--devv")
    assert proc.returncode == 2 and "unknown option --devv" in proc.stderr and pip_calls == []


# -- the real pip dry run ---------------------------------------------------------------------------------------
def _wheel(folder: Path, version: str) -> None:
    """A minimal valid wheel named torch (an empty package), enough for pip's resolver."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"torch-{version}.dist-info"
    files = {"torch/__init__.py": b"",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(folder / f"torch-{version}-py3-none-any.whl", "w") as z:
        record = []
        for name, data in files.items():
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        z.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


@pytest.fixture(scope="module")
def python_without_torch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A virtualenv interpreter without torch whose ``-m pip`` is this environment's pip (through PYTHONPATH)."""
    import pip

    base = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True, timeout=120)
    only_pip = base / "only-pip"
    only_pip.mkdir()
    (only_pip / "pip").symlink_to(Path(pip.__file__).parent)
    return base / "venv" / "bin" / "python", only_pip


@pytest.mark.parametrize(("wheels", "plan"), [(["2.13.0"], "local"), ([], "cpu-index"), (["2.12.0"], "cpu-index")])
def test_real_pip_finds_a_local_wheel_in_find_links_only(tmp_path: Path, python_without_torch: tuple[Path, Path],
                                                         wheels: list[str], plan: str) -> None:
    python, only_pip = python_without_torch
    links = tmp_path / "links"
    links.mkdir()
    for v in wheels:
        _wheel(links, v)
    bin_dir = _fake_bin(tmp_path, gpu=False)
    (bin_dir / "python").unlink()  # the real interpreter this time
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "PYTHON": str(python),
           "PYTHONPATH": str(only_pip), "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": str(links),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "ADE_TORCH_VERSION": "2.13.0"}
    check = subprocess.run([str(python), "-c", "import torch"], env=env, capture_output=True)
    assert check.returncode != 0  # the interpreter really has no torch
    proc = subprocess.run(["bash", str(SETUP), "--print-plan"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == plan
