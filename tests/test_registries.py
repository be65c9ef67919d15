"""An attention implementation and a timing variant added through their registries alone
(attention.registry, measure.variants): the command line takes them, a sweep measures them,
and their rows say what they are. CPU, tiny preset."""

from __future__ import annotations

import pytest

from bertbench.attention import registry
from bertbench.attention.registry import Implementation
from bertbench.measure import variants
from bertbench.measure.variants import LOOP, Prepared, Variant
from bertbench.run import sweep


@pytest.fixture
def dummy_implementation(monkeypatch):
    """eager attention under another name: one registry entry, nothing else."""
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register(Implementation("dummy-eager", "eager", packed=False, in_all=False))
    return "dummy-eager"


def test_an_implementation_added_to_the_registry_runs_and_all_leaves_it_out(tiny_config, dummy_implementation):
    config = tiny_config(f"--task classification --optimization {dummy_implementation} --batch-size 2 --max-seqlen 16")
    assert config.implementations == (dummy_implementation,)
    rows = sweep.run(config)
    assert [(r.attn_implementation, r.status, r.runs) for r in rows] == [(dummy_implementation, "ok", "eager")]
    assert rows[0].max_abs_err == 0  # the same attention as the eager baseline, on the same weights
    assert dummy_implementation not in tiny_config("--optimization all").implementations  # in_all=False
    with pytest.raises(ValueError, match="registered already"):
        registry.register(Implementation(dummy_implementation, "eager"))


def test_a_packed_run_knows_the_new_entry_has_no_varlen_route(tiny_config, dummy_implementation):
    rows = sweep.run(
        tiny_config(f"--task qa --optimization {dummy_implementation} --batch-size 2 --max-seqlen 16 --packed")
    )
    assert rows[0].status == "unavailable" and "has no variable-length path" in rows[0].detail


def _twice(call, device):
    call()
    return Prepared(call)


def _refuses(call, device):
    raise RuntimeError("this variant refuses every call")


@pytest.mark.parametrize("prepare", [_twice, _refuses])
def test_a_variant_added_to_the_registry_fills_its_columns_under_its_own_label(tiny_config, monkeypatch, prepare):
    """A third variant in the columns of `compiled` (a new variant adds its own in schema.Row):
    its label, not torch.compile's, names it in a row's detail."""
    dummy = Variant("compiled", "twice-warmed loop", prepare, failure_prefix="warming failed: ", enabled=lambda c: True)
    monkeypatch.setattr(variants, "VARIANTS", [LOOP])
    variants.register(dummy)
    with pytest.raises(ValueError, match="registered already"):
        variants.register(dummy)
    (row,) = sweep.run(tiny_config("--task qa --optimization sdpa --batch-size 2 --max-seqlen 16"))
    if prepare is _twice:
        assert row.status == "ok" and row.latency_ms_compiled > 0 and row.latency_ms_compiled_baseline > 0
        assert row.compile_s is None  # no set-up column named
    else:
        assert row.latency_ms_compiled is None
        assert "twice-warmed loop error: warming failed: RuntimeError: this variant refuses every call" in row.detail
        assert "torch.compile" not in row.detail


def test_every_extra_timing_has_its_switch_variant_and_columns(tiny_config):
    """spec.timings is the one table the switch, the row's key, charts and reports read: each entry
    has its parser flag, a measure.variants entry of its name and its columns in schema.Row, and a
    run that gives the flag times it (the key column True, the plan line naming it)."""
    from bertbench.flags import build_parser
    from bertbench.report.charts import METRICS
    from bertbench.report.standings import VARIANTS as STANDINGS
    from bertbench.run.console import describe
    from bertbench.spec.schema import COLUMNS, KEY_COLUMNS
    from bertbench.spec.timings import EXTRA_TIMINGS

    parser_flags = {flag for action in build_parser("bertbench")._actions for flag in action.option_strings}
    for timing in EXTRA_TIMINGS:
        assert timing.flag in parser_flags and timing.column in KEY_COLUMNS
        assert timing.name in {v.name for v in variants.VARIANTS}
        for column in (f"latency_ms_{timing.name}", f"latency_ms_{timing.name}_baseline", f"speedup_{timing.name}_pct",
                       f"attention_kernels_{timing.name}"):  # fmt: skip
            assert column in COLUMNS, column
        assert f"speedup_{timing.name}_pct" in {m.column for m in METRICS}
        assert f"latency_ms_{timing.name}" in {column for _, column in STANDINGS}
    config = tiny_config("--task qa --optimization sdpa --compile")
    assert config.timings == ("compiled",) and [v.name for v in variants.variants_of(config)] == ["loop", "compiled"]
    assert "--compile (compiled)" in describe(config)
