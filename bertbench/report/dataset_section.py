"""The report's 'Whole-dataset pass' section (from <results-dir>/dataset/<task>.csv, written by --dataset):
per task, the last run's implementation x strategy table, its fastest combination and that one's gain
over the baseline's pad-max pass (spec.dataset_schema.fastest, as the console names it). No torch here.
"""

from __future__ import annotations

from pathlib import Path

from bertbench.report.dataset_chart import FOLDER as FOLDER  # re-exported: where its chart goes
from bertbench.report.dataset_chart import label
from bertbench.spec.dataset_schema import GPU_AND_PASS, Winner, fastest
from bertbench.store.dataset_file import latest_run, read_rows

MEANS = (
    "Every sequence of one dataset through each implementation, once per batching strategy: **pass s** the median "
    "of the timed passes (whole passes, interleaved), **tokens/s** real tokens over it, **padded** the share of "
    "computed positions that were padding, **speedup** against the baseline with pad-max; on a GPU, **GPU s** the "
    "kernels' durations summed over one profiled pass, **GPU speedup** the same against the baseline's pad-max, "
    "**GPU busy** GPU s over pass s; **max abs err** each "
    "sequence's task logits against the baseline's pad-max pass. With --cuda-graphs, **graphs** the CUDA graphs "
    "captured for the pass (one per padded shape and mask, one per packed capacity), **graph s** the median pass "
    "replayed from them, each batch copied into its graph's buffers, and **replay gain** its gain over the loop's "
    "pass; a graph pass that could not run says why, and the loop's figures stand. Only the last run of each task "
    "is shown."
)
GRAPH_HEADER = ["graphs", "graph s", "replay gain"]


def _cell(value: str, spec: str, unit: str = "") -> str:
    try:
        return format(float(value), spec) + unit
    except ValueError:
        return "—"


def _graph_cells(row: dict[str, str]) -> list[str]:
    return [row["graphs"] or "—", _cell(row["graph_total_s"], ".4g"), _cell(row["graph_gain_pct"], "+.1f", " %")]


def _status(row: dict[str, str]) -> str:
    """The row's status, why where it is not ok, and its graph pass's note where that is not ok."""
    notes = [row["detail"] if row["detail"] and row["status"] != "ok" else "",
             f"graphs: {row['graph_note']}" if row["graph_note"] not in ("", "ok") else ""]  # fmt: skip
    notes = [n for n in notes if n]
    return row["status"] + (f" ({'; '.join(notes)})" if notes else "")


def _headline(winner: Winner, baseline: str) -> str:
    """The winner's sentence as the console prints it, its names in bold, capitalised."""
    text = winner.text(baseline).replace(
        f"{winner.implementation} with {winner.strategy}", f"**{winner.implementation} with {winner.strategy}**", 1
    )
    return text[0].upper() + text[1:] + "."


def blocks(results_dir: Path, charts: list[str]) -> list[tuple]:
    """The report's section; none when there are no dataset rows. `charts`: paths relative to the plots folder."""
    runs = latest_run(read_rows(results_dir))
    if not runs:
        return []
    out: list[tuple] = [("h2", "Whole-dataset pass"), ("p", MEANS)]
    for task, rows in runs.items():
        first = rows[0]
        out.append(("h3", task))
        out.append(("p", f"{first['model']} · {first['dtype']} · {first['device']}: {first['sequences']} sequences "
                         f"({first['token_ids']} token ids, {first['real_tokens']} real tokens), batch "
                         f"{first['batch_size']}, max seqlen {first['max_seqlen']}, {first['tokens_per_batch']} "
                         f"tokens per packed batch; run `{first['run_id']}`."))  # fmt: skip
        on_gpu, winner = fastest(rows, "gpu_s"), fastest(rows)
        if on_gpu is not None:  # the GPU's answer leads where the rows have it
            out.append(("p", _headline(on_gpu, first["baseline"]) + " " + GPU_AND_PASS))
        out.append(("p", _headline(winner, first["baseline"]) if winner is not None else "Nothing was measured."))
        graphs = any(r["graph_note"] for r in rows)
        header = ["implementation", "strategy", "batches", "padded", "GPU s", "GPU speedup", "GPU busy", "pass s",
                  "tokens/s", "speedup", "peak MiB", "max abs err", *(GRAPH_HEADER if graphs else []),
                  "status"]  # fmt: skip
        table = [[label(r), r["strategy"], r["batches"], _cell(r["padded_share"], ".1%"), _cell(r["gpu_s"], ".4g"),
                  _cell(r["speedup_gpu_pct"], "+.1f", " %"), _cell(r["gpu_busy_pct"], ".0f", " %"),
                  _cell(r["total_s"], ".4g"), _cell(r["tokens_per_s"], ",.0f"), _cell(r["speedup_pct"], "+.1f", " %"),
                  _cell(r["peak_mem_mb"], ".1f"), _cell(r["max_abs_err"], ".2g"),
                  *(_graph_cells(r) if graphs else []), _status(r)]
                 for r in rows]  # fmt: skip
        out.append(("table", header, table))
    chart = next((c for c in charts if c.endswith(".png")), None) or next(iter(charts), None)
    if chart:
        out.append(("img", "whole-dataset pass: real tokens/s per strategy and implementation", chart))
    return out
