import base64
import json
import re
from pathlib import Path

import pytest
from helpers import write

import plot
from bertbench.report import report
from bertbench.report.load import load_results
from bertbench.report.standings import findings, margin, measurements, regimes
from bertbench.spec.schema import Row

SETUP = {"timestamp": "2026-11-25T10:00:00+00:00", "run_id": "20261125T100000Z-abc123", "task": "qa",
         "model": "bert-base", "baseline": "eager", "device": "NVIDIA H100 80GB HBM3 (cuda:0)", "dtype": "fp16",
         "seqlen_stdev": 10.0, "use_mask": True, "packed": False, "mode": "inference", "cuda_graphs": False,
         "compile": False, "status": "ok", "detail": "", "torch": "2.11.0+cu130", "transformers": "5.17.0"}  # fmt: skip


def row(impl: str, batch: int, seqlen: int, pad: float, ms: float, base_ms: float, spread: float, mem: float,
        **extra) -> Row:  # fmt: skip
    """One measured row: median ms with p10/p90 at ms x (1 -/+ spread); the baseline's spread is 2 %."""
    real = round(batch * seqlen * (1 - pad))
    return Row(**{**SETUP, "attn_implementation": impl, "batch_size": batch, "max_seqlen": seqlen,
                  "avg_seqlen": seqlen * (1 - pad), "pad_fraction": pad, "real_tokens": real,
                  "baseline_status": "ok", "latency_ms": ms, "latency_ms_p10": ms * (1 - spread),
                  "latency_ms_p90": ms * (1 + spread), "latency_ms_baseline": base_ms,
                  "latency_ms_baseline_p10": base_ms * 0.98, "latency_ms_baseline_p90": base_ms * 1.02,
                  "speedup_pct": (base_ms / ms - 1) * 100, "mem_mb": mem, "mem_mb_baseline": 200.0,
                  "mem_saved_pct": (1 - mem / 200) * 100, "tokens_per_s": real / ms * 1e3, **extra})  # fmt: skip


def known_rows() -> list[Row]:
    """sdpa 1.5x faster than eager at batch 64, flash_attention_2 1.2x, both with tight p10-p90 (2 %).
    At batch 1 and 4 flash_attention_2 (1.05x) leads sdpa (1.03x) by 2 %, well inside their 10 % spreads.
    flash_attention_2 needs the least memory (100 MiB against sdpa's 120 and eager's 200)."""
    rows = []
    for batch in (1, 4, 64):
        for seqlen in (128, 512):
            for pad in (0.0, 0.5):
                base = 5 + 0.001 * batch * seqlen
                small = batch < 32
                for impl, big, little, mem in (("sdpa", 1.5, 1.03, 120.0), ("flash_attention_2", 1.2, 1.05, 100.0)):
                    ms = base / (little if small else big)
                    rows.append(row(impl, batch, seqlen, pad, ms, base, 0.10 if small else 0.02, mem))
    return rows


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("known"), known_rows())


@pytest.fixture(scope="module")
def plotted(known, tmp_path_factory) -> Path:
    """The charts and the report of the known results, with a run manifest beside them."""
    manifest = {"run_id": SETUP["run_id"], "config": {"model_size": "base", "dtype": "fp16", "baseline": "eager"},
                "environment": {"torch": "2.11.0+cu130", "device": "NVIDIA H100 80GB HBM3 (cuda:0)",
                                "gpu": {"name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04"}}}  # fmt: skip
    (known / "runs").mkdir()
    (known / "runs" / f"{SETUP['run_id']}.json").write_text(json.dumps(manifest))
    (known / "runs" / "broken.json").write_text("{")  # a manifest that cannot be read is left out
    plots = tmp_path_factory.mktemp("plots")
    assert plot.main(["--results-dir", str(known), "--plots-dir", str(plots), "--format", "png"]) == 0
    return plots


def by_regime(results: Path, **kwargs) -> dict:
    (data,) = load_results(results)
    return {f.regime: f for f in findings(data, **kwargs)}


def test_regimes_follow_the_grid(known):
    (data,) = load_results(known)
    assert [label for label, _ in regimes(data.rows)] == [
        "all points", "small batch (batch ≤ 4)", "large batch (batch 64)", "short sequences (seqlen 128)",
        "long sequences (seqlen 512)", "low padding (pad 0 %)", "high padding (pad 50 %)",
    ]  # fmt: skip


def test_the_fastest_and_leanest_are_the_constructed_ones(known):
    found = by_regime(known)
    large = found["large batch (batch 64)"]
    assert large.fastest == "sdpa" and large.compared == large.points == 4
    assert large.over_runner_up.other == "flash_attention_2" and large.over_runner_up.pct == pytest.approx(25, rel=1e-3)
    assert large.over_runner_up.verdict == "beyond noise" and large.over_runner_up.clear == 4
    assert large.over_baseline.pct == pytest.approx(50, rel=1e-3) and large.over_baseline.verdict == "beyond noise"
    small = found["small batch (batch ≤ 4)"]
    assert small.fastest == "flash_attention_2" and small.over_runner_up.other == "sdpa"
    assert small.over_runner_up.pct == pytest.approx(100 * (1.05 / 1.03 - 1), rel=1e-3)
    assert small.over_runner_up.verdict == "within noise" and small.over_runner_up.clear == 0
    for f in found.values():
        assert f.leanest == "flash_attention_2"
        assert f.lean_over_runner_up.other == "sdpa" and f.lean_over_runner_up.pct == pytest.approx(100 / 6, rel=1e-3)
        assert f.lean_over_baseline.pct == pytest.approx(50, rel=1e-3) and f.lean_over_baseline.verdict == "beyond 1 %"


def test_the_report_says_which_margin_is_within_noise(plotted):
    md = (plotted / "report.md").read_text()
    small = next(line for line in md.splitlines() if line.startswith("| small batch (batch ≤ 4) | 8/8"))
    assert "**flash_attention_2** | +1.9 % over sdpa: within noise (clear at 0/8 points)" in small
    large = next(line for line in md.splitlines() if line.startswith("| large batch (batch 64) | 4/4"))
    assert "**sdpa** | +25.0 % over flash_attention_2: beyond noise (clear at 4/4 points) | +50.0 %" in large
    headline = next(line for line in md.splitlines() if line.startswith("- small batch"))
    assert "**flash_attention_2** fastest in qa" in headline and "(within noise)" in headline
    assert "NVIDIA H100 80GB HBM3" in md and "580.159.04" in md and "1 run manifest" in md
    assert "](qa/seqlen_512_speedup.png)" in md and "![qa: every metric at every max seqlen](qa/combined.png)" in md


def test_the_html_report_is_self_contained(plotted):
    page = (plotted / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == 1 and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in page and "within noise" in page


def test_cuda_graph_replays_compete_and_are_compared_with_the_baseline_replayed(tmp_path):
    rows = known_rows()
    for r in rows:
        r.latency_ms_graph, r.latency_ms_graph_baseline = r.latency_ms / 2, r.latency_ms_baseline / 2
    found = by_regime(write(tmp_path, rows))["large batch (batch 64)"]
    assert found.fastest == "sdpa + CUDA graph" and found.over_runner_up.other == "flash_attention_2 + CUDA graph"
    assert found.over_baseline.other == "eager (baseline) + CUDA graph" and found.over_baseline.pct == pytest.approx(
        50, rel=1e-3
    )
    assert found.over_runner_up.verdict == "no spread recorded"
    assert by_regime(tmp_path, loop_only=True)["large batch (batch 64)"].fastest == "sdpa"


def test_older_rows_without_the_baselines_spread_are_compared_one_sided(tmp_path):
    rows = known_rows()
    for r in rows:
        r.latency_ms_baseline_p10 = r.latency_ms_baseline_p90 = None
    (data,) = load_results(write(tmp_path, rows))
    table = measurements(data).set_index(["batch_size", "max_seqlen", "pad_fraction", "mode", "config"])
    m = margin(table, "sdpa", "eager (baseline)")
    assert m.one_sided and m.verdict == "beyond noise" and "one-sided" in m.text()


def test_a_configuration_measured_at_too_few_points_is_named_not_compared(tmp_path):
    rows = [*known_rows(), row("flex_attention", 64, 128, 0.0, 1.0, 5.064, 0.02, 50.0)]
    found = by_regime(write(tmp_path, rows))["all points"]
    assert found.fastest == "sdpa" and found.left_out == ["flex_attention (1/12 points)"]


def test_train_and_inference_are_regimes_of_their_own_and_the_environment_comes_from_the_rows(tmp_path):
    rows = known_rows()
    for r in rows[: len(rows) // 2]:  # batch 1 and half of batch 4, both implementations
        r.mode = "train"
    (data,) = load_results(write(tmp_path, rows))
    assert [label for label, _ in regimes(data.rows)][-2:] == ["train", "inference"]
    source, env = report.environment([data])
    assert "no run manifests" in source and ["torch", "2.11.0+cu130"] in env and ["device", SETUP["device"][:-9]] in env


def test_the_environment_counts_the_run_of_a_row_not_drawn_too(tmp_path):
    """An unavailable row of another run is named in the report, so its run's manifest counts."""
    other = "20261126T100000Z-def456"
    missing = Row(**{**row("flash_attention_2", 1, 128, 0.0, 1.0, 1.0, 0.02, 0.0).__dict__, "run_id": other})
    missing.status, missing.detail = "unavailable", "flash-attn is not installed"
    results = write(tmp_path, [*known_rows(), missing])
    (results / "runs").mkdir()
    for run_id in (SETUP["run_id"], other):
        (results / "runs" / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "environment": {}}))
    (data,) = load_results(results)
    source, env = report.environment([data])
    assert "2 run manifest(s)" in source and ["run", f"{SETUP['run_id']}, {other}"] in env


def test_where_rows_have_gpu_time_the_kernels_answer_leads_and_the_latency_stands_beside(tmp_path):
    """Host-bound rows: the latency ranks sdpa first, the kernels rank flash_attention_2 first (as at
    64 x 512 pad 0.5 on the H200). The report says both, the GPU time first, each with what it answers;
    the charts draw the GPU-time speedup."""
    rows = []
    for batch in (1, 64):
        for pad in (0.0, 0.5):
            for impl, ms, gpu in (("sdpa", 8.0, 2.4), ("flash_attention_2", 11.0, 2.2)):
                rows.append(row(impl, batch, 512, pad, ms, 9.0, 0.02, 100.0, gpu_ms=gpu, gpu_ms_baseline=4.8,
                                speedup_gpu_pct=(4.8 / gpu - 1) * 100, throttled=batch == 64,
                                throttle_reasons="0x4" if batch == 64 else ""))  # fmt: skip
    results = write(tmp_path / "r", rows)
    (data,) = load_results(results)
    (everything, *_) = findings(data)
    assert everything.fastest == "sdpa" and everything.fastest_gpu == "flash_attention_2"
    assert everything.gpu_over_runner_up.other == "sdpa" and everything.gpu_over_runner_up.pct == pytest.approx(
        (2.4 / 2.2 - 1) * 100
    )
    assert everything.gpu_over_runner_up.verdict == "beyond 2 %"
    assert plot.main(["--results-dir", str(results), "--plots-dir", str(tmp_path / "p")]) == 0
    text = (tmp_path / "p" / "report.md").read_text()
    assert text.index("### Fastest kernels (GPU time)") < text.index("### Fastest end to end (latency)")
    assert report.GPU_MEANS in text and report.E2E_MEANS in text
    assert "- all points, GPU time: **flash_attention_2** fastest in qa" in text
    assert "- all points, end to end: **sdpa** fastest in qa" in text
    assert (tmp_path / "p" / "qa" / "seqlen_512_speedup_gpu.png").exists()
    assert "- 4 rows ran with the SM clock throttled (reasons 0x4)" in text


def test_the_dataset_section_shows_the_graph_columns_and_a_graph_pass_that_could_not_run(tmp_path):
    from bertbench.report import dataset_section
    from bertbench.spec.dataset_schema import DatasetRow
    from bertbench.store.dataset_file import append, dataset_path

    common = dict(run_id="r", task="qa", baseline="eager", status="ok", total_s=2.0, batches=3)
    append(dataset_path(tmp_path, "qa"), [
        DatasetRow(attn_implementation="eager", is_baseline=True, strategy="pad-max", graphs=2, graph_total_s=1.0,
                   graph_gain_pct=100.0, graph_note="ok", **common),
        DatasetRow(attn_implementation="sdpa-varlen", is_baseline=False, strategy="pad-longest",
                   graph_note="unavailable: synchronises with the host", **common),
    ])  # fmt: skip
    (table,) = [b for b in dataset_section.blocks(tmp_path, []) if b[0] == "table"]
    _, header, cells = table
    assert header[-4:] == ["graphs", "graph s", "replay gain", "status"]
    assert cells[0][-4:] == ["2", "1", "+100.0 %", "ok"]
    assert cells[1][-4:] == ["—", "—", "—", "ok (graphs: unavailable: synchronises with the host)"]
    plain = tmp_path / "plain"
    append(dataset_path(plain, "qa"), [DatasetRow(attn_implementation="eager", strategy="pad-max", **common)])
    (table,) = [b for b in dataset_section.blocks(plain, []) if b[0] == "table"]
    assert "graphs" not in table[1]


def test_the_dataset_section_leads_with_the_gpu_time_where_the_rows_have_it(tmp_path):
    from bertbench.report import dataset_section
    from bertbench.spec.dataset_schema import GPU_AND_PASS, DatasetRow
    from bertbench.store.dataset_file import append, dataset_path

    common = dict(run_id="r", task="qa", baseline="eager", status="ok", batches=3)
    append(dataset_path(tmp_path, "qa"), [
        DatasetRow(attn_implementation="eager", is_baseline=True, strategy="pad-max", total_s=2.0, gpu_s=1.0,
                   speedup_gpu_pct=0.0, gpu_busy_pct=50.0, **common),
        DatasetRow(attn_implementation="sdpa", is_baseline=False, strategy="packed", total_s=1.0, gpu_s=0.25,
                   speedup_gpu_pct=300.0, gpu_busy_pct=25.0, **common),
    ])  # fmt: skip
    blocks = dataset_section.blocks(tmp_path, [])
    texts = [b[1] for b in blocks if b[0] == "p"]
    lead = next(i for i, t in enumerate(texts) if t.startswith("Least GPU time: **sdpa with packed**"))
    assert GPU_AND_PASS in texts[lead] and "4.00x less than eager with pad-max (+300.0 %)" in texts[lead]
    assert texts[lead + 1].startswith("Fastest: **sdpa with packed**, 1 s a pass, 2.00x the speed of eager")
    (table,) = [b for b in blocks if b[0] == "table"]
    _, header, cells = table
    at = header.index("GPU s")
    assert header[at : at + 3] == ["GPU s", "GPU speedup", "GPU busy"]
    assert cells[1][at : at + 3] == ["0.25", "+300.0 %", "25 %"]
