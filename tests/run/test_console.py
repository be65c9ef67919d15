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
