"""The progress lines and the tqdm bar: the time left from the cost model, the first point's set-up left out."""

import io

import pytest

from bertbench.run.console import Progress


def test_time_left_leaves_the_first_points_set_up_out():
    ticks = iter([0.0, 10.0, 11.0, 13.0, 14.0])  # start; the first point takes 10 s, then 1 s a unit of cost
    stream = io.StringIO()
    progress = Progress([1.0, 1.0, 2.0, 1.0], stream, clock=lambda: next(ticks))
    for label in "abcd":
        progress.advance(label)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "a: 1/4 points, 10s elapsed, about ? left",
        "b: 2/4 points, 11s elapsed, about 3s left",  # 1 s for a cost of 1; 3 left
        "c: 3/4 points, 13s elapsed, about 1s left",
        "d: 4/4 points, 14s elapsed, about 0s left",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_tqdm_draws_one_line_with_the_same_estimate_and_ends_it_when_interrupted():
    ticks = iter([0.0, 10.0, 11.0])  # as above: the time left after the second point is 3 s
    stream = Terminal()
    with pytest.raises(KeyboardInterrupt), Progress([1.0, 1.0, 2.0, 1.0], stream, clock=lambda: next(ticks)) as bar:
        for label in "ab":
            bar.now(label)
            bar.advance(label)
        bar.now("c")
        raise KeyboardInterrupt
    drawn = stream.getvalue()
    assert "1/4 points [00:00<?] b" in drawn and "2/4 points [00:00<00:03] c" in drawn  # elapsed: tqdm's own clock
    assert drawn.endswith("c\n") and "\n" not in drawn[:-1]  # redrawn in place, its line ended when closed


def _row(**kw):
    from bertbench.spec.schema import Row

    base = dict(task="qa", attn_implementation="sdpa", batch_size=8, max_seqlen=512, pad_fraction=0.5,
                pad_fraction_real=0.5, latency_ms_baseline=8.3, latency_ms=6.6, speedup_pct=25.8,
                status="ok")  # fmt: skip
    return Row(**{**base, **kw})


@pytest.mark.parametrize("count", [1, 20])
def test_the_summary_leads_with_the_gpu_speedup_and_says_what_each_answers(count):
    from bertbench.run.console import E2E_MEANS, GPU_MEANS, summarize

    gpu = [_row(gpu_ms_baseline=4.74, gpu_ms=2.35, speedup_gpu_pct=101.7, throttled=i == 0) for i in range(count)]
    text = summarize(gpu)
    header = text.splitlines()[0]
    assert header.index("gpu" if count == 1 else "GPU speedup") < header.index(
        "speedup%" if count == 1 else "median speedup"
    )
    assert "+101.7" in text and "+25.8" in text and GPU_MEANS in text and E2E_MEANS in text
    assert f"1 of {count} rows ran with the SM clock throttled" in text
    plain = summarize([_row() for _ in range(count)])  # rows without the columns: as before
    assert "gpu" not in plain.lower() and GPU_MEANS not in plain
