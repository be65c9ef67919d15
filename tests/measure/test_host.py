import json
import math

import pytest
import torch

from bertbench.measure import host
from bertbench.measure.host import HostWatch
from bertbench.measure.host import launch_us as real_launch_us
from bertbench.measure.timing import HOST_BOUND_SHARE, Latency
from bertbench.run import sweep

CPU = torch.device("cpu")


def test_the_probe_reads_microseconds_per_launch():
    value = real_launch_us(CPU)
    assert math.isfinite(value) and 0 < value < 1000


def test_a_points_slowdown_is_its_median_probe_over_the_runs_typical(monkeypatch):
    values = iter([10.0] * host.WARM_READINGS + [10.0, 20.0, 20.0, 10.2, 10.0])
    monkeypatch.setattr(host, "launch_us", lambda device: next(values))
    watch = HostWatch(CPU)
    assert watch.typical_us == 10.0
    watch.start_point()
    watch.read()
    watch.read()
    assert watch.slowdown() == pytest.approx(2.0)  # median of 10, 20, 20
    watch.start_point()
    watch.read()
    assert watch.slowdown() == pytest.approx(1.01)  # one slow probe in a few does not decide


def test_every_row_and_the_manifest_record_the_hosts_speed(tiny_config, monkeypatch):
    # 5 probes at the start, then 3 per point (before, after its one round of timed calls, after):
    # the host halves its speed for the last of four points
    speeds = iter([5.0] * (host.WARM_READINGS + 3 * 3) + [10.0] * 3)
    monkeypatch.setattr(host, "launch_us", lambda device: next(speeds))
    config = tiny_config("--task qa --sweep --batch-sizes 1 2 4 8 --seqlens 16 --pad-fractions 0 --optimization sdpa")
    rows = sweep.run(config, progress=False)
    slowdowns = [r["host_slowdown"] for r in rows]
    assert slowdowns == pytest.approx([1.0, 1.0, 1.0, 2.0])
    (manifest,) = (config.output_dir / "runs").iterdir()
    record = json.loads(manifest.read_text())["host"]
    assert record["launch_us_at_start"] == 5.0 and record["probes"] == host.WARM_READINGS + 4 * 3
    assert record["launch_us_p10"] <= record["launch_us_typical"] <= record["launch_us_p90"]


def test_host_share_tells_a_call_the_host_paced_from_one_the_gpu_paced():
    gpu_paced = Latency((10.0, 10.2, 9.9), host_ms=(3.0, 2.8, 9.9))  # the last waited behind a full queue
    host_paced = Latency((6.0, 6.1, 6.3), host_ms=(5.9, 6.0, 6.2))
    assert gpu_paced.host_share == pytest.approx(2.8 / 10.0) and not gpu_paced.host_bound
    assert host_paced.host_share == pytest.approx(5.9 / 6.1) and host_paced.host_bound
    assert HOST_BOUND_SHARE == 0.8
    cpu = Latency((1.0, 2.0))  # on the CPU the host is the device: no share
    assert cpu.host_share is None and cpu.host_bound is None


def test_the_charts_mark_host_bound_rows_by_the_same_threshold():
    from bertbench.report import charts

    assert charts.HOST_BOUND_SHARE == HOST_BOUND_SHARE
