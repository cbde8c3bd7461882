"""tootlake as a user gets it: the wheel built from this tree, installed into a fresh virtualenv
with the extras the README documents, and used from outside the repository (cwd a temporary
folder, so nothing is imported from src/).

Two virtualenvs: the core install (`pip install tootlake`), which must run the README's Python
example, and the one `make run` makes (`tootlake[collect,report]`), which must run the demo and
the HTML report. pip installs the dependencies from its cache or PyPI: about 30 s in all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import REAL

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUN_EXTRAS = "collect,report"  # the Makefile's RUN_EXTRAS: what the demo and the report need


def _run(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once a session from a copy of what the build reads, so that the build
    leaves no build/ or egg-info in the work tree."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _ok(_run([*pip, "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)], cwd=dist))
    (built,) = dist.glob("tootlake-*.whl")
    return built


class Env:
    """A fresh virtualenv with the wheel installed, and a working folder outside the repo."""

    def __init__(self, root: Path, wheel: Path, extras: str) -> None:
        self.bin = root / "venv" / "bin"
        self.cwd = root / "work"
        self.cwd.mkdir()
        venv.create(root / "venv", with_pip=True)
        spec = f"{wheel}[{extras}]" if extras else str(wheel)
        pip = [str(self.bin / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        _ok(_run([*pip, "install", "--quiet", spec], cwd=self.cwd, env=self.env, timeout=900))

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.bin.parent)
        return env

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return _run(list(args), cwd=self.cwd, env=self.env, timeout=timeout)

    def tootlake(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin / "tootlake"), *args, timeout=timeout)


@pytest.fixture(scope="module")
def core(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """`pip install tootlake`: no extras."""
    return Env(tmp_path_factory.mktemp("core"), wheel, "")


@pytest.fixture(scope="module")
def runtime(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """What `make run` installs: `tootlake[collect,report]`."""
    return Env(tmp_path_factory.mktemp("runtime"), wheel, RUN_EXTRAS)


def readme_python_example() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    assert len(blocks) == 1, "the README should have one Python example"
    return blocks[0]


def test_the_wheel_ships_the_licences_and_project_urls_and_no_tests(wheel: Path) -> None:
    import zipfile

    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        meta = whl.read(metadata).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith("LICENSE.rtoot.txt") for n in names)  # beside its recorded statuses
    assert "License-Expression: MIT" in meta
    for label in ("Homepage", "Documentation", "Source", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://github.com/tootlake/tootlake" in meta
    # The long description is the README: its links work on a package index.
    assert not re.search(r"\]\((?!https?://|#)", meta), "a relative link in the README"
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    # every Avro envelope schema shipped so far: sinks read old messages with them
    schemas = ROOT / "src" / "tootlake" / "kafka" / "schemas"
    shipped = {f"tootlake/kafka/schemas/{p.name}" for p in schemas.glob("envelope-v*.avsc")}
    assert len(shipped) >= 2 and shipped <= set(names), shipped - set(names)


def test_the_readme_python_example_runs_after_the_core_install(core: Env) -> None:
    # What the README's curl line writes: public statuses from the Mastodon API, one a line.
    shutil.copy(REAL / "mastodonsocial.json", core.cwd / "statuses.jsonl")
    (core.cwd / "example.py").write_text(readme_python_example())
    where = _ok(core.run("python", "-c", "import tootlake; print(tootlake.__file__)")).stdout
    assert Path(where.strip()).is_relative_to(core.bin.parent)  # the wheel, not src/
    result = _ok(core.run("python", "example.py"))
    assert "en" in result.stdout and "Traceback" not in result.stderr


def test_report_of_a_missing_lake_fails_and_names_the_path(core: Env) -> None:
    missing = core.cwd / "missing"
    result = core.tootlake("report", "--lake", str(missing))
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_an_html_report_without_its_extra_names_the_extra_to_install(core: Env) -> None:
    lake = core.cwd / "replayed"
    _ok(core.tootlake("replay", str(REAL / "mastodonsocial.json"), "--lake", str(lake), "-q"))
    result = core.tootlake("report", "--lake", str(lake), "--html", "report.html")
    assert result.returncode == 1
    assert 'pip install -e ".[report]"' in result.stderr


def test_the_demo_and_the_html_report_run_with_the_runtime_extras(runtime: Env) -> None:
    _ok(runtime.tootlake("demo", "--duration", "6", "--quiet", "--lake", "demo-lake"))
    assert any((runtime.cwd / "demo-lake").rglob("*.parquet"))
    _ok(runtime.tootlake("report", "--lake", "demo-lake", "--html", "report.html"))
    page = (runtime.cwd / "report.html").read_text()
    assert page.count("<svg") >= 5 and page.rstrip().endswith("</html>")


def test_make_run_works_without_cargo_and_make_test_says_it_needs_it(tmp_path):
    """The README promises `make run` on a fresh machine with Python: without Rust's cargo it
    installs the run extras and says the native helpers are left out, instead of stopping;
    `make test` needs them and stops naming cargo. (`make -n`: the plan, nothing run; no
    registry is asked: the venv is made here.)"""
    python = Path(sys.executable).resolve().parent
    bare = {"PATH": f"{python}:/usr/bin:/bin", "HOME": str(tmp_path)}  # no ~/.cargo/bin
    if _run(["sh", "-c", "cargo --version"], cwd=ROOT, env=bare).returncode == 0:
        pytest.skip("cargo is installed system-wide here: no machine without it to play")
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)
    run = _ok(_run(["make", "-n", "run", f"VENV={fresh}"], cwd=ROOT, env=bare)).stdout
    assert "./native" not in run and "runs without its native helpers" in run
    assert f'-e ".[{RUN_EXTRAS}]"' in run and "tootlake demo" in run
    done = _run(["make", "test", f"VENV={fresh}"], cwd=ROOT, env=bare)
    assert done.returncode != 0 and "needs Rust's cargo (https://rustup.rs)" in done.stdout
    assert not (fresh / ".installed-native").exists()
    if shutil.which("cargo"):  # on the machine's own PATH: make run builds them
        with_cargo = _ok(_run(["make", "-n", "run", f"VENV={fresh}"], cwd=ROOT)).stdout
        assert "pip install --quiet ./native" in with_cargo
