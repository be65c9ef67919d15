"""The result CSVs as plot.py draws them: read, normalised to the current layout, one TaskData per task.

Each task's <task>.csv is read, or its <task>.jsonl record where there is no CSV (store.results.result_files).

Whatever the CSVs hold is drawn: the categories (implementations, seqlens, pad fractions,
batch sizes) come from the data. Within one task only the latest row of each grid point
and implementation is drawn, and only rows of the setup (model, dtype, device, baseline)
of the task's most recent row; rows that are not `ok` are left out and summarised.

Every version of this project's CSVs is read: columns an older file lacks get the value the
benchmark used before they existed (packed False, mode inference, use_mask True, ...) or are
derived from the columns it has (pad fraction, tokens/s, speedups); a CSV with just the
original contract columns (csvfile.CONTRACT) plots too. The charts are in charts.py, the report in
report.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bertbench.spec.figures import (
    NOISY_REL_IQR,
    OLD_ROW_DEFAULTS,
    baseline_label,
    mem_saved_pct,
    per_second,
    speedup_pct,
)
from bertbench.spec.schema import COLUMN_TYPES, COLUMNS, EXTRA_MEASUREMENTS, KEY_COLUMNS, without_gpu_index
from bertbench.spec.timings import EXTRA_TIMINGS
from bertbench.store.csvfile import HeaderMismatch
from bertbench.store.results import ResultsError, load_rows
from bertbench.store.results import result_files as result_files  # re-exported: plot_cli asks for them

# The columns every version of the benchmark wrote: without them a CSV is not ours.
SETUP = ("model", "dtype", "device", "baseline")
POINT = tuple(c for c in KEY_COLUMNS if c != "task" and c not in EXTRA_MEASUREMENTS)  # one file holds one task
GRID = ("batch_size", "max_seqlen", "pad_fraction", "mode")  # a point of the grid, whatever ran there
BOOLS = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}


class PlotError(Exception):
    """Bad input to plot.py: reported as one line, exit code 2."""


@dataclass
class TaskData:
    task: str
    rows: pd.DataFrame  # the ok rows drawn, with a `series` column (implementation, packed, train)
    setup: dict[str, str]
    skipped: pd.DataFrame  # rows not drawn (status other than ok)
    other_setups: int  # rows of other setups, not drawn
    manifests: list[dict] | None = None  # runs/<run_id>.json of the rows' runs, where written

    @property
    def title(self) -> str:
        s = self.setup
        return f"{self.task} | {s['model']} | {s['dtype']} | {s['device']} | baseline {s['baseline']}"

    @property
    def baseline_series(self) -> str:
        return baseline_label(self.setup["baseline"])

    @property
    def baseline_failed(self) -> pd.DataFrame:
        """ok rows whose baseline did not run (oom, error): measured, but without a speedup."""
        failed = self.rows["baseline_status"].fillna("ok") != "ok"
        return self.rows[failed & self.rows["speedup_pct"].isna()]


def load_results(results_dir: Path) -> list[TaskData]:
    if not results_dir.is_dir():
        raise PlotError(f"{results_dir}: no such results directory")
    paths = result_files(results_dir)
    if not paths:
        raise PlotError(f"{results_dir}: no <task>.csv or <task>.jsonl files to plot")
    data = [_task_data(path) for path in paths]
    manifests = read_manifests(results_dir)
    for d in data:  # the runs of every row the report names: drawn, or not drawn with its status
        ids = set(pd.concat([d.rows, d.skipped])["run_id"].dropna().astype(str))
        d.manifests = [m for m in manifests if str(m.get("run_id")) in ids]
    return data


def read_manifests(results_dir: Path) -> list[dict]:
    """<results-dir>/runs/*.json (written by newer runs); one that cannot be read is left out."""
    found = []
    for path in sorted((results_dir / "runs").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            found.append(data)
    return found


def _read(path: Path) -> pd.DataFrame:
    """The rows of one CSV (or .jsonl record) in the current layout (schema.COLUMNS), whichever version wrote it.

    results.load_rows reads every version of ours (and refuses a file that is not ours, or
    damaged, in one line); normalise types the values and derives what older rows lack.
    """
    try:
        rows = load_rows(path)
    except HeaderMismatch as e:
        raise PlotError(e.with_advice("move it aside or choose another --results-dir")) from None
    except ResultsError as e:
        raise PlotError(str(e)) from None
    except (UnicodeDecodeError, OSError) as e:
        raise PlotError(f"{path}: not a readable results file ({str(e).strip().splitlines()[0][:120]})") from None
    return normalise(pd.DataFrame(rows, columns=list(COLUMNS)).replace("", np.nan))


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed columns of the current layout; what an older file lacks is defaulted or derived."""
    out = pd.DataFrame(index=frame.index)
    for column in COLUMNS:
        kind = COLUMN_TYPES[column]
        raw = (frame[column] if column in frame else pd.Series(np.nan, index=frame.index)).astype(object)
        if kind in ("float", "int"):  # a number a run cannot write (inf: a hand-edited file) is no number
            out[column] = pd.to_numeric(raw, errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
            continue
        if kind == "bool":
            raw = raw.map(lambda v: v if isinstance(v, bool) else BOOLS.get(str(v).strip(), np.nan)).astype(object)
        out[column] = raw.where(raw.notna(), OLD_ROW_DEFAULTS.get(column, np.nan))  # a missing or empty value
    out["pad_fraction"] = out["pad_fraction"].fillna((1 - out["avg_seqlen"] / out["max_seqlen"]).round(4))
    out["real_tokens"] = out["real_tokens"].fillna((out["batch_size"] * out["avg_seqlen"]).round())
    measured = out["baseline_status"].isna() & out["latency_ms_baseline"].notna()
    out.loc[measured, "baseline_status"] = "ok"  # older rows: a baseline latency means it ran
    fill = {
        "tokens_per_s": per_second(out["real_tokens"], out["latency_ms"]),
        "speedup_pct": speedup_pct(out["latency_ms_baseline"], out["latency_ms"]),
        "mem_saved_pct": mem_saved_pct(out["mem_mb_baseline"], out["mem_mb"]),
        **{
            f"speedup_{t.name}_pct": speedup_pct(out[f"latency_ms_{t.name}_baseline"], out[f"latency_ms_{t.name}"])
            for t in EXTRA_TIMINGS
        },
    }
    older = out["schema_version"].isna()  # newer rows left a figure empty on purpose (e.g. other kernels)
    for column, values in fill.items():
        out[column] = out[column].where(~older, out[column].fillna(values))
    out["device"] = out["device"].map(lambda v: without_gpu_index(str(v)))  # rows from every GPU of a host
    return out


def _task_data(path: Path) -> TaskData:
    frame = _read(path)
    task = path.stem
    if frame.empty:
        return TaskData(task, frame.assign(series=""), {k: str(OLD_ROW_DEFAULTS.get(k, "?")) for k in SETUP}, frame, 0)
    latest = frame.iloc[-1]
    setup = {key: str(latest[key]) for key in SETUP}
    same_setup = np.logical_and.reduce([frame[k].map(str) == v for k, v in setup.items()])
    mine = frame[same_setup].copy()
    mine = mine.drop_duplicates(subset=list(POINT), keep="last")  # rows are appended in time order
    ok = mine["status"] == "ok"
    unreadable = ok & mine[["batch_size", "max_seqlen", "latency_ms"]].isna().any(axis=1)
    mine.loc[unreadable, "detail"] = "status ok, but no number in batch_size, max_seqlen or latency_ms"
    ok &= ~unreadable
    rows = mine[ok].copy()
    rows["series"] = series_names(rows)
    return TaskData(task, rows, setup, mine[~ok].copy(), int((~same_setup).sum()))


def series_names(rows: pd.DataFrame) -> pd.Series:
    """What a line of the charts stands for: the implementation, packed or not, inference or train."""
    packed = rows["packed"].map({True: " packed"}).fillna("")
    train = (rows["mode"] == "train").map({True: " train", False: ""})
    return rows["attn_implementation"].astype(str) + packed + train


def no_charts_reason(d: TaskData) -> str | None:
    """Why a task gets no charts, or None when it does."""
    if not d.rows.empty:
        return None
    if d.skipped.empty and not d.other_setups:
        return "no rows"
    statuses = ", ".join(f"{n} {s}" for s, n in d.skipped["status"].fillna("?").value_counts().items())
    return f"no ok rows ({statuses or 'only rows of other setups'})"


def summary(data: list[TaskData]) -> str:
    """What was drawn and what was left out, and why."""
    lines = []
    for d in data:
        reason = no_charts_reason(d)
        lines.append(f"{d.task}: {reason}, no charts" if reason else f"{d.task}: {len(d.rows)} rows drawn ({d.title})")
        if d.other_setups:
            lines.append(f"  {d.other_setups} rows of other setups (model, dtype, device or baseline) not drawn")
        skipped = d.skipped.fillna({"status": "?", "attn_implementation": "?", "detail": ""})
        for (status, name, detail), group in skipped.groupby(["status", "attn_implementation", "detail"]):
            lines.append(f"  left out {len(group)} {status} rows of {name}: {detail}")
        for status, group in d.baseline_failed.groupby("baseline_status"):
            lines.append(f"  {len(group)} rows where the baseline was {status}: throughput only, no speedup (x)")
        marked = {
            f"noisy (IQR > {NOISY_REL_IQR * 100:g} % of the median)": d.rows["noisy"].eq(True),
            "host-bound": d.rows["launch_bound"].eq(True) | d.rows["host_bound"].eq(True),
        }
        for what, rows in marked.items():
            if n := int(rows.sum()):
                lines.append(f"  {n} rows {what}: hollow markers")
        if n := int(d.rows["throttled"].eq(True).sum()):
            reasons = ", ".join(sorted({str(r) for r in d.rows["throttle_reasons"].dropna() if str(r)}))
            lines.append(f"  {n} rows ran with the SM clock throttled" + (f" (reasons {reasons})" if reasons else ""))
    return "\n".join(lines)
