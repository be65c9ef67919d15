"""The progress lines: the time left from the cost model, the first point's set-up left out."""

import io

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
