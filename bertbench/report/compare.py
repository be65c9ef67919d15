"""Compare two runs: did an upgrade (torch, transformers, flash-attn) or another GPU change the answer?

    python -m bertbench.compare A B [--threshold PCT] [--fail-above PCT] [--out DIR]

A and B are each a results folder (every <task>.csv in it, or <task>.jsonl where there is no CSV; not
*.csv.part* or *.damaged-*) or one CSV or .jsonl record.
Rows join on schema.KEY_COLUMNS without `device`, so runs on different GPUs join; a key column an
older file lacks takes the value the benchmark used before it existed (packed False, mode inference,
cuda_graphs False, compile False, use_mask True; others empty). The last row of a key wins (file
order). Rows with status ok or mismatch are compared, the others counted. For each joined row, and
for the baseline as a series of its own, r = B/A of the median latencies (and of peak memory) and:

    s = (p90 - p10) / median           each row's relative spread over its timed batches
    m = max(threshold, sqrt(s_A^2 + s_B^2) / 2)
    slower if r > 1 + m, faster if r < 1 / (1 + m), otherwise same

Half the 10-90 % range is about 1.3 standard deviations of one batch's latency: a change counts only
if the median moved further than the batch-to-batch noise of both runs (added as independent errors)
and than the threshold (default 2 %), the drift two runs on one GPU show anyway. Stricter on purpose
than a test on the medians' standard errors, which shrink with the batch count while drift does not.
Symmetric in log r: swapping A and B swaps faster and slower. Where a row lacks p10/p90, m is the
threshold alone ("no spread recorded").

Exit status: 0 compared; 1 a point `slower` by more than --fail-above PCT %, or no point measured in
both (a CI guard must not pass on an empty comparison); 2 bad input, told in one line on stderr.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bertbench.spec.figures import MEASURED, OLD_KEY_DEFAULTS, baseline_label
from bertbench.spec.schema import KEY_COLUMNS, without_gpu_index
from bertbench.spec.timings import EXTRA_TIMINGS
from bertbench.store.csvfile import HeaderMismatch, ResultsError, Unreadable
from bertbench.store.results import load_rows, result_files

CONTRACT = ("task", "attn_implementation", "batch_size", "max_seqlen", "status", "latency_ms")
NOT_BASELINE = ("attn_implementation", "packed")  # left out of the baseline's point: it never runs packed
VERDICTS = {"faster": ("#0072B2", "v"), "same": ("#999999", "o"), "slower": ("#D55E00", "^")}  # Okabe-Ito
HEAD = "| implementation | batch | seqlen | pad | latency A (ms) | latency B (ms) | B/A | margin | verdict | mem B/A |"
GPU_HEAD = "| implementation | batch | seqlen | pad | GPU A (ms) | GPU B (ms) | GPU B/A | GPU verdict |"
GPU_MEANS = (
    "GPU time (gpu_ms): the sum of the call's kernel durations, which the host's speed does not move: did the "
    "kernels get faster? Latency: the timed loop's median: what this Python host delivers per call. The GPU time "
    "has no recorded spread (it repeats within about 1 % between runs); its verdict is the threshold's."
)
RULE = (
    "Verdict: slower if B/A > 1 + m, faster if B/A < 1/(1 + m), else same; m = max({:g} %, sqrt(s_A² + s_B²)/2), "
    "s = (p90 - p10)/median of each row; m = the threshold alone where a row lacks p10/p90 (no spread recorded)."
)

Row = dict[str, str]
Key = tuple[str, ...]


class CompareError(Exception):
    """Bad input: one line on stderr, exit status 2."""


@dataclass(frozen=True)
class Timing:
    median: float  # ms
    p10: float | None
    p90: float | None
    mem: float | None  # peak MB

    @property
    def spread(self) -> float | None:  # (p90 - p10) / median
        return None if self.p10 is None or self.p90 is None else max(self.p90 - self.p10, 0.0) / self.median


@dataclass(frozen=True)
class Verdict:
    ratio: float  # latency B/A
    margin: float  # m of the module docstring, a fraction
    kind: str  # faster, slower or same
    spread_recorded: bool

    @classmethod
    def of(cls, a: Timing, b: Timing, threshold: float) -> Verdict:
        ratio, sa, sb = b.median / a.median, a.spread, b.spread
        recorded = sa is not None and sb is not None
        margin = max(threshold, math.hypot(sa, sb) / 2) if recorded else threshold  # type: ignore[arg-type]
        kind = "slower" if ratio > 1 + margin else "faster" if ratio < 1 / (1 + margin) else "same"
        return cls(ratio, margin, kind, recorded)

    def __str__(self) -> str:
        return self.kind if self.spread_recorded else f"{self.kind} (no spread recorded)"


@dataclass(frozen=True)
class Pair:
    """One series (an implementation or the baseline) at one point, measured in A and in B."""

    section: str  # task (model dtype, baseline)
    series: str
    batch: str
    seqlen: str
    pad: str
    a: Timing
    b: Timing
    verdict: Verdict
    note: str  # which side's row is a mismatch
    mem_ratio: float | None
    gpu_a: float | None = None  # GPU time (gpu_ms), where both rows have it
    gpu_b: float | None = None
    gpu_verdict: Verdict | None = None  # B/A of the GPU time, by the threshold alone (no spread recorded)

    @property
    def headline(self) -> tuple[Verdict, float, float, str]:
        """The GPU time's verdict where both rows have one, else the latency's: what --fail-above and the
        chart judge by."""
        if self.gpu_verdict is not None and self.gpu_a is not None and self.gpu_b is not None:
            return self.gpu_verdict, self.gpu_a, self.gpu_b, "GPU time"
        return self.verdict, self.a.median, self.b.median, "latency"


@dataclass
class Comparison:
    pairs: list[Pair]
    coverage: Counter[tuple[str, str]]  # keys per (task, "only in A" / "only in B" / "A <status> / B <status>")


def joined_columns(a: list[Row], b: list[Row]) -> tuple[str, ...]:
    """The key columns less `device`, and less a column one side never recorded (e.g. `seed`
    in files from before it existed) and that has no default meaning for old rows."""
    return tuple(
        c
        for c in KEY_COLUMNS
        if c != "device" and (c in OLD_KEY_DEFAULTS or (any(r.get(c) for r in a) and any(r.get(c) for r in b)))
    )


def keyed(rows: list[Row], columns: tuple[str, ...]) -> dict[Key, Row]:
    found: dict[Key, Row] = {}
    for row in rows:
        key = tuple(_norm(row.get(c) or OLD_KEY_DEFAULTS.get(c, "")) for c in columns)
        found.pop(key, None)
        found[key] = row
    return found


def read_all(path: Path) -> list[Row]:
    if not path.exists():
        raise CompareError(f"{path}: no such file or folder")
    files = [path]
    if path.is_dir():
        files = result_files(path)
        if not files:
            raise CompareError(f"{path}: no *.csv or *.jsonl files in this folder")
    rows = list(itertools.chain.from_iterable(map(read_csv, files)))
    if not rows:
        raise CompareError(f"{path}: no result rows in it")
    return rows


def read_csv(path: Path) -> list[Row]:
    """Every row of one results file, through the store's reader (any version of ours)."""
    try:
        return [{k: v.strip() for k, v in row.items()} for row in load_rows(path)]
    except Unreadable as e:
        raise CompareError(f"{path}: cannot read it ({e})") from None
    except HeaderMismatch:
        kind = "record" if path.suffix == ".jsonl" else "CSV"
        raise CompareError(f"{path}: not a bertbench results {kind} (compared on {', '.join(CONTRACT)})") from None
    except (ResultsError, OSError) as e:
        raise CompareError(f"{path}: cannot read it ({e})") from None


def _float(value: str | None) -> float:
    try:
        return float(value or "nan")
    except ValueError:
        return math.nan


def _norm(value: str) -> str:
    """One spelling per number ('128' and '128.0'); True, sdpa and the like stay as written."""
    return value if math.isnan(number := _float(value)) else f"{number:.6g}"


def timing(row: Row, latency: str, mem: str) -> Timing | None:
    def positive(column: str) -> float | None:
        value = _float(row.get(column))
        return value if value > 0 and math.isfinite(value) else None

    if (median := positive(latency)) is None:
        return None
    return Timing(median, positive(f"{latency}_p10"), positive(f"{latency}_p90"), positive(mem))


def series_name(row: Row, baseline: bool) -> str:
    name = baseline_label(row.get("baseline") or "?") if baseline else row["attn_implementation"]
    flags = {"packed": row.get("packed") == "True" and not baseline, "train": row.get("mode") == "train",
             "no mask": row.get("use_mask") == "False",
             **{t.tag: row.get(t.column) == "True" for t in EXTRA_TIMINGS}}  # fmt: skip
    return " ".join([name, *(flag for flag, on in flags.items() if on)])


def pair(ra: Row, rb: Row, a: Timing, b: Timing, baseline: bool, threshold: float) -> Pair:
    section = f"{ra['task']} ({ra.get('model', '')} {ra.get('dtype', '')}, baseline {ra.get('baseline', '')})"
    sides = [f"{side} mismatch" for side, r in (("A", ra), ("B", rb)) if r["status"] == "mismatch" and not baseline]
    point, mem = (ra["batch_size"], ra["max_seqlen"], ra.get("pad_fraction", "")), a.mem and b.mem and b.mem / a.mem
    column = "gpu_ms_baseline" if baseline else "gpu_ms"
    ga, gb = _positive(ra.get(column)), _positive(rb.get(column))
    gpu = Verdict.of(Timing(ga, None, None, None), Timing(gb, None, None, None), threshold) if ga and gb else None
    return Pair(section, series_name(ra, baseline), *point, a, b, Verdict.of(a, b, threshold), ", ".join(sides), mem,
                ga if gpu else None, gb if gpu else None, gpu)  # fmt: skip


def _positive(value: str | None) -> float | None:
    number = _float(value)
    return number if number > 0 and math.isfinite(number) else None


def compare(a: dict[Key, Row], b: dict[Key, Row], columns: tuple[str, ...], threshold: float) -> Comparison:
    task = columns.index("task")
    result = Comparison([], Counter())
    result.coverage.update((key[task], "only in A") for key in a if key not in b)
    result.coverage.update((key[task], "only in B") for key in b if key not in a)
    for key, ra in a.items():
        if (rb := b.get(key)) is None:
            continue
        ta, tb = timing(ra, "latency_ms", "mem_mb"), timing(rb, "latency_ms", "mem_mb")
        if ra["status"] in MEASURED and rb["status"] in MEASURED and ta and tb:
            result.pairs.append(pair(ra, rb, ta, tb, False, threshold))
            result.coverage[(key[task], "compared")] += 1
        else:
            result.coverage[(key[task], f"A {ra['status'] or '?'} / B {rb['status'] or '?'}")] += 1
    base_a, base_b = baselines(a, columns), baselines(b, columns)
    for key, (ra, ta) in base_a.items():
        if key in base_b:
            result.pairs.append(pair(ra, base_b[key][0], ta, base_b[key][1], True, threshold))
    result.pairs.sort(
        key=lambda p: (p.section, "(baseline)" in p.series, p.series, *map(_float, (p.seqlen, p.pad, p.batch)))
    )
    return result


def baselines(rows: dict[Key, Row], columns: tuple[str, ...]) -> dict[Key, tuple[Row, Timing]]:
    """The baseline's timing per point, from any row that has one (an implementation may have failed)."""
    keep = [i for i, c in enumerate(columns) if c not in NOT_BASELINE]
    ok = {key: row for key, row in rows.items() if row.get("baseline_status", "") in ("", "ok")}
    return {tuple(key[i] for i in keep): (row, t) for key, row in ok.items()
            if (t := timing(row, "latency_ms_baseline", "mem_mb_baseline"))}  # fmt: skip


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe(path: Path, rows: dict[Key, Row]) -> str:
    def seen(column: str) -> str:
        return ", ".join(sorted({without_gpu_index(r[column]) for r in rows.values() if r.get(column)})) or "?"

    versions = "; ".join(f"{c} {seen(c)}" for c in ("torch", "transformers", "flash_attn"))
    return f"{path} ({len(rows)} points; {seen('device')}; {versions})"


def render(result: Comparison, sides: list[str], threshold: float) -> str:
    gpu = any(p.gpu_verdict is not None for p in result.pairs)
    lines = ["# bertbench compare", "", f"- A: {sides[0]}", f"- B: {sides[1]}", f"- {RULE.format(threshold * 100)}"]
    lines += [f"- {GPU_MEANS}"] if gpu else []
    head = GPU_HEAD[:-1] + HEAD[HEAD.index("| latency A") :] if gpu else HEAD
    for section, pairs in itertools.groupby(result.pairs, key=lambda p: p.section):
        lines += ["", f"## {section}", "", head, "|---" * (14 if gpu else 10) + "|"]
        for p in pairs:
            v, note = p.verdict, f"; {p.note}" if p.note else ""
            g = p.gpu_verdict
            lead = (
                (f" {p.gpu_a:.4g} | {p.gpu_b:.4g} | {g.ratio:.3f} | {g.kind} |" if g else " - | - | - | - |")
                if gpu
                else ""
            )
            lines.append(f"| {p.series} | {p.batch} | {p.seqlen} | {p.pad} |{lead} {p.a.median:.4g} | {p.b.median:.4g} "
                         f"| {v.ratio:.3f} | {v.margin:.1%} | {v}{note} | {_x(p.mem_ratio)} |")  # fmt: skip
    gpu_cols = "geomean GPU B/A | GPU faster | GPU slower | GPU same | " if gpu else ""
    lines += ["", "## Summary", "", f"| section | implementation | points | {gpu_cols}geomean latency B/A | faster | "
              "slower | same | no spread recorded | geomean memory B/A |",
              "|---" * (13 if gpu else 9) + "|"]  # fmt: skip
    for (section, series), group in itertools.groupby(result.pairs, key=lambda p: (p.section, p.series)):
        ps = list(group)
        kinds = Counter([p.verdict.kind for p in ps] + ["unknown" for p in ps if not p.verdict.spread_recorded])
        ratio, mem = geomean([p.verdict.ratio for p in ps]), geomean([r for p in ps if (r := p.mem_ratio) is not None])
        lead = ""
        if gpu:
            gv = [p.gpu_verdict for p in ps if p.gpu_verdict is not None]
            gk = Counter(v.kind for v in gv)
            lead = f"{_x(geomean([v.ratio for v in gv]))} | {gk['faster']} | {gk['slower']} | {gk['same']} | "
        lines.append(f"| {section} | {series} | {len(ps)} | {lead}{_x(ratio)} | {kinds['faster']} | "
                     f"{kinds['slower']} | {kinds['same']} | {kinds['unknown']} | {_x(mem)} |")  # fmt: skip
    lines += ["", "| task | compared | only in A | only in B | in both, not measured on one side |", "|---" * 5 + "|"]
    for task in sorted({t for t, _ in result.coverage}):
        mine = {what: n for (t, what), n in sorted(result.coverage.items()) if t == task}
        statuses = {what: n for what, n in mine.items() if what.startswith("A ")}  # "A oom / B ok": 3
        unmeasured = " ".join([str(sum(statuses.values())), *(f"({what}: {n})" for what, n in statuses.items())])
        only = f"{mine.get('only in A', 0)} | {mine.get('only in B', 0)}"
        lines.append(f"| {task} | {mine.get('compared', 0)} | {only} | {unmeasured} |")
    return "\n".join(lines) + "\n"
