"""The contributors' GPU scripts (scripts/) refuse a machine without a GPU, or bad flags, with one
line and exit 2, before any model loads."""

import pytest
import torch

from scripts import loop_overhead, replay_clock


@pytest.mark.parametrize("script", [loop_overhead, replay_clock], ids=lambda s: s.__name__)
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the flags are valid here")
def test_without_a_gpu_the_script_says_so_in_one_line_and_exits_2(script, capsys):
    assert script.main(["--task", "qa", "--optimization", "sdpa"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no CUDA GPU" in err


@pytest.mark.parametrize("script", [loop_overhead, replay_clock], ids=lambda s: s.__name__)
def test_an_unknown_implementation_is_one_line_and_exit_2(script, capsys):
    assert script.main(["--task", "qa", "--optimization", "no-such-attention"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no-such-attention" in err
