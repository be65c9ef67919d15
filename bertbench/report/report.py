"""The report of a results folder: per task and regime, the fastest and the leanest configuration.

Computed from the CSVs (and the runs/*.json manifests where newer runs wrote them) alone, so it
can be regenerated: plot.py writes it as <plots-dir>/report.md and report.html (self-contained,
the combined charts embedded). How configurations are ranked and when a margin counts: standings.py
(RULES below says the same to the reader).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from bertbench.report.files import write_text
from bertbench.report.load import TaskData
from bertbench.report.standings import MEM_MARGIN_PCT, Finding, Margin, findings, headlines
from bertbench.spec.catalog import preset_name
from bertbench.spec.timings import EXTRA_TIMINGS

ENV_KEYS = ("device", "torch", "transformers", "flash_attn", "flash_attn_3", "cuda", "bertbench", "git_commit",
            "python", "platform", "cpu", "torch_threads", "peak_tflops")  # fmt: skip
GPU_KEYS = ("name", "capability", "memory_gib", "driver", "cudnn", "sm_clock_mhz", "max_sm_clock_mhz",
            "memory_clock_mhz", "power_limit_w", "temperature_c", "other_processes", "warning", "nvml")  # fmt: skip
ROW_KEYS = ("model", "dtype", "device", "baseline", "torch", "transformers", "flash_attn", "cuda", "bertbench",
            "git_commit", "run_id")  # fmt: skip


def environment(data: list[TaskData]) -> tuple[str, list[list[str]]]:
    """Where the numbers come from: the run manifests where written, else the rows' own columns."""
    seen: dict[str, dict[str, None]] = {}

    def add(key: str, value: object) -> None:
        if value not in (None, "", [], {}) and not (isinstance(value, float) and math.isnan(value)):
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            seen.setdefault(key, {})[text] = None

    manifests = list({str(m.get("run_id")): m for d in data for m in d.manifests or []}.values())
    for m in manifests:
        env, config = m.get("environment") or {}, m.get("config") or {}
        add("run", m.get("run_id"))
        model = config.get("model_path") or (preset_name(config["model_size"]) if config.get("model_size") else None)
        for key, value in (("model", model), ("dtype", config.get("dtype")), ("baseline", config.get("baseline"))):
            add(key, value)
        for key in ENV_KEYS:
            add(key, env.get(key))
        for key in GPU_KEYS:
            add(f"gpu {key}", (env.get("gpu") or {}).get(key))
        add("timing", ", ".join(f"{k} {v}" for k, v in (config.get("timing") or {}).items() if v is not None))
    if manifests:
        source = f"from {len(manifests)} run manifest(s) (`runs/<run_id>.json`)"
    else:
        source = "from the rows' own columns: these results have no run manifests (`runs/*.json`)"
        for d in data:
            for key in ROW_KEYS:
                for value in pd.concat([d.rows, d.skipped])[key].dropna().astype(str).unique():
                    add("run" if key == "run_id" else key, value)
    return source, [[key, ", ".join(values)] for key, values in seen.items()]


def document(data: list[TaskData], written: dict[str, list[str]], title: str, command: str) -> list[tuple]:
    """The report's blocks; `written` maps a task to its chart files, relative to the plots folder."""
    from bertbench.report.load import no_charts_reason, summary

    tasks = {d.task: findings(d) for d in data if not d.rows.empty}
    blocks: list[tuple] = [("h1", title), ("p", f"Computed from the result CSVs (and run manifests, where written) "
                                               f"alone by `{command}`; run it again to regenerate this report and the "
                                               "charts.")]  # fmt: skip
    blocks += [("h2", "Headlines"), ("ul", headlines(tasks) or ["nothing measured"])]
    source, env = environment(data)
    blocks += [("h2", "Environment"), ("p", f"Where the numbers come from, {source}."), ("table", ["", "value"], env)]
    blocks += [("h2", "How to read this"), ("p", RULES)]
    for d in data:
        blocks.append(("h2", d.task))
        reason = no_charts_reason(d)
        if reason:
            blocks.append(("p", f"`{d.task}.csv`: {reason}; no charts, nothing compared."))
            continue
        s = d.setup
        blocks.append(("p", f"{s['model']} · {s['dtype']} · {s['device']} · baseline {s['baseline']}: "
                            f"{len(d.rows)} ok rows from `{d.task}.csv`."))  # fmt: skip
        notes = summary([d]).splitlines()[1:]
        if notes:
            blocks.append(("ul", [n.strip() for n in notes]))
        found = tasks[d.task]
        if any(f.fastest_gpu for f in found):
            blocks += [("h3", "Fastest kernels (GPU time)"), ("p", GPU_MEANS), _gpu_table(found),
                       ("h3", "Fastest end to end (latency)"), ("p", E2E_MEANS)]  # fmt: skip
        else:
            blocks.append(("h3", "Fastest"))
        blocks.append(_speed_table(found))
        if any(f.fastest and f.fastest.endswith(tuple(f" + {t.label}" for t in EXTRA_TIMINGS)) for f in found):
            blocks += [("h3", "Fastest in the Python loop (" + ", ".join(f"no {t.label}" for t in EXTRA_TIMINGS) + ")"),
                       _speed_table(findings(d, loop_only=True))]  # fmt: skip
        if any(f.leanest for f in found):
            lean = [[f.regime, f"**{f.leanest}**" if f.leanest else "—", _text(f.lean_over_runner_up),
                     _over_baseline(f.lean_over_baseline, f.lean_over_runner_up, f.leanest)]
                    for f in found]  # fmt: skip
            header = ["regime", "leanest", "memory saved vs the runner-up", "memory saved vs the baseline"]
            blocks += [("h3", "Leanest (peak memory)"), ("table", header, lean)]
        else:
            blocks.append(("p", "Peak memory is not measured here (CPU runs): no leanest configuration."))
        left = sorted({x for f in found for x in f.left_out})
        if left:
            blocks.append(("p", "Not compared (measured at too few of a regime's points): " + "; ".join(left) + "."))
        blocks += _charts(d.task, written.get(d.task, []))
    return blocks


def _charts(task: str, charts: list[str]) -> list[tuple]:
    """The combined chart, embedded, and a link to every chart: PNG where written, else SVG."""
    kind = ".png" if any(c.endswith(".png") for c in charts) else ".svg"
    mine = [c for c in charts if c.endswith(kind)]
    per_seqlen: dict[str, list[str]] = {}
    for c in mine:
        if match := re.fullmatch(r"seqlen_(\d+)_(\w+)", Path(c).stem):
            per_seqlen.setdefault(match[1], []).append(f"[{match[2].replace('_', ' ')}]({c})")
    links = [f"max seqlen {seqlen}: " + " · ".join(items) for seqlen, items in per_seqlen.items()]
    blocks: list[tuple] = []
    combined = next((c for c in mine if Path(c).stem == "combined"), None)
    if combined:
        blocks.append(("img", f"{task}: every metric at every max seqlen", combined))
        links.append(f"[every metric at every max seqlen]({combined})")
    if kind == ".png" and any(c.endswith(".svg") for c in charts):
        links.append("each also as SVG, beside the PNG")
    return [*blocks, ("p", "Charts:"), ("ul", links)] if links else blocks


def _text(m: Margin | None, winner: str | None = None) -> str:
    """A margin's cell; over the baseline (winner given) without a margin: the winner is the baseline."""
    if m is not None:
        return m.text(name=winner is None)
    return "is the baseline" if winner else "—"


def _over_baseline(m: Margin | None, runner_up: Margin | None, winner: str | None) -> str:
    return "the runner-up" if m is not None and m == runner_up else _text(m, winner)


def _speed_table(found: list[Finding]) -> tuple:
    rows = [[f.regime, f"{f.compared}/{f.points}", f"**{f.fastest}**" if f.fastest else "—",
             _text(f.over_runner_up), _over_baseline(f.over_baseline, f.over_runner_up, f.fastest)]
            for f in found]  # fmt: skip
    header = ["regime", "points compared", "fastest", "speedup over the runner-up", "speedup over the baseline"]
    return ("table", header, rows)


GPU_MEANS = (
    "Which kernels are faster: each configuration's GPU time, the sum of its kernels' durations per call "
    "(gpu_ms), which the host's speed does not move; no spread is recorded (two runs agree within about 1 %), "
    "so a margin counts above 2 %."
)
E2E_MEANS = (
    "What this Python host delivers per call: the timed loop's median latency, which follows the host's speed "
    "where the GPU waits for it (host-bound rows)."
)


def _gpu_table(found: list[Finding]) -> tuple:
    rows = [[f.regime, f"**{f.fastest_gpu}**" if f.fastest_gpu else "—", _text(f.gpu_over_runner_up),
             _over_baseline(f.gpu_over_baseline, f.gpu_over_runner_up, f.fastest_gpu)]
            for f in found]  # fmt: skip
    header = ["regime", "fastest kernels", "GPU-time speedup over the runner-up", "over the baseline"]
    return ("table", header, rows)


RULES = (
    "A **configuration** is an implementation (packed or not), the baseline, or either replayed from a CUDA graph "
    "or compiled where measured. **Fastest**: the lowest geometric mean of the median latencies over the regime's "
    "points where every configuration compared was measured (points compared / points of the regime); a "
    "configuration measured at fewer than half the points is not compared. **Speedup** over another: its geometric "
    "mean / the fastest's - 1. **Beyond noise**: the two p10-p90 intervals (geometric means of p10 and of p90 over "
    "the points compared) do not overlap; *clear at k/n points*: at k single points the fastest's p90 is below the "
    "other's p10 (*worse*: the reverse). **One-sided**: one of them records no p10/p90 (older rows for the "
    "baseline), its median stands in; CUDA-graph and compiled timings record none (*no spread recorded*). "
    "**Leanest**: the lowest geometric mean of peak memory; memory has no spread, a margin counts above "
    f"{MEM_MARGIN_PCT:g} %. Regimes: batch ≤ 8 / ≥ 32, seqlen ≤ 128 / ≥ 512, pad ≤ 10 % / ≥ 50 % where the grid "
    "spans them, else its smallest / largest value; inference / train where both were measured."
)


def write(data: list[TaskData], plots_dir: Path, written: list[Path], results_dir: Path, command: str) -> list[Path]:
    """<plots-dir>/report.md and report.html (self-contained: images embedded)."""
    from bertbench.report.markup import to_html, to_markdown

    charts: dict[str, list[str]] = {}
    for path in written:
        charts.setdefault(path.parent.name, []).append(path.relative_to(plots_dir).as_posix())
    title = f"bertbench report: {results_dir.as_posix()}"
    if data:
        blocks = document(data, charts, title, command)
    else:  # --dataset rows alone: their section is the report
        blocks = [("h1", title), ("p", f"Computed from the `--dataset` rows alone by `{command}`.")]
    from bertbench.report import dataset_section  # the --dataset rows, where there are any

    blocks += dataset_section.blocks(results_dir, charts.get(dataset_section.FOLDER, []))
    md, page = plots_dir / "report.md", plots_dir / "report.html"
    write_text(md, to_markdown(blocks))
    write_text(page, to_html(blocks, plots_dir, title))
    return [md, page]
