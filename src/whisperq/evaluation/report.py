"""Turning load-test runs into a report: PNG plots (matplotlib), a self-contained HTML page and a
Markdown summary, with a side-by-side table when there are several runs (a sweep)."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The stage breakdown from job timings, when a run has no traces.
STAGES = ("queueWaitS", "downloadS", "decodeS", "transcribeS", "uploadS")


@dataclass
class Run:
    name: str
    path: Path
    summary: dict[str, Any]
    jobs: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    traces: list[dict[str, Any]]
    probes: list[dict[str, Any]]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def find_runs(dirs: list[Path]) -> list[Run]:
    """Every run (a folder with summary.json) in or under the given folders."""
    runs = []
    for root in dirs:
        for summary_path in sorted([*root.glob("summary.json"), *root.glob("*/summary.json")]):
            folder = summary_path.parent
            # Runs from several result folders are told apart by their folder's name.
            name = f"{root.name}/{folder.name}" if len(dirs) > 1 and folder != root else folder.name
            runs.append(Run(name, folder, json.loads(summary_path.read_text(encoding="utf-8")),
                            _jsonl(folder / "jobs.jsonl"), _jsonl(folder / "samples.jsonl"),
                            _jsonl(folder / "traces.jsonl"), _jsonl(folder / "probe.jsonl")))
    return runs


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=100)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _start(run: Run) -> float:
    times = [j["submittedAt"] for j in run.jobs if j.get("submittedAt")]
    return min(times) if times else 0.0


def plot_throughput(runs: list[Run], path: Path) -> Path:
    fig, ax = _figure("Jobs completed over time", "seconds since the first submission", "jobs completed")
    for run in runs:
        t0 = _start(run)
        ends = sorted(j["endedAt"] - t0 for j in run.jobs if j.get("status") == "COMPLETED" and j.get("endedAt"))
        ax.step([0, *ends], list(range(len(ends) + 1)), where="post", label=run.name)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_latency_cdf(runs: list[Run], path: Path) -> Path:
    fig, ax = _figure("End-to-end latency (upload to completed)", "seconds", "fraction of jobs")
    for run in runs:
        values = sorted(j["latencyS"] for j in run.jobs if j.get("latencyS") is not None)
        if not values:
            continue
        ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=run.name)
        for q, style in ((50, ":"), (95, "--"), (99, "-.")):
            ax.axvline(run.summary["latencyS"][f"p{q}"], linestyle=style, alpha=0.4)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=8, title="lines: p50 : p95 -- p99 -.", title_fontsize=7)
    return _save(fig, path)


def stage_source(run: Run) -> str:
    return "X-Ray traces" if run.traces else "job timings"


def stage_means(run: Run) -> dict[str, float]:
    """Mean seconds per completed job in each stage: from the run's X-Ray traces where it has them
    (queue wait, which no function sees, from the job's enqueue and start times), else from the
    timings each job records."""
    done = [j for j in run.jobs if j.get("status") == "COMPLETED"]
    if run.traces:
        from whisperq.evaluation import traces

        stages = traces.per_job(run.traces)
        traced = [j for j in done if j["jobId"] in stages]
        waits = [j["queueWaitS"] for j in traced if j.get("queueWaitS") is not None]
        return {"queue wait": sum(waits) / len(waits) if waits else 0.0,
                **traces.stage_means(stages, [j["jobId"] for j in traced])}
    means = {}
    for stage in STAGES:
        values = [j[stage] for j in done if j.get(stage) is not None]
        means[stage] = sum(values) / len(values) if values else 0.0
    cold = [j["modelLoadS"] for j in done if j.get("coldStart") and j.get("modelLoadS") is not None]
    means["modelLoadS (cold starts)"] = sum(cold) / len(done) if done and cold else 0.0
    return means


def plot_stages(runs: list[Run], path: Path) -> Path:
    sources = sorted({stage_source(run) for run in runs})
    fig, ax = _figure(f"Where a job's time goes (mean s per completed job, from {' and '.join(sources)})",
                      "seconds", "")
    left = [0.0] * len(runs)
    names = [run.name for run in runs]
    all_means = [stage_means(run) for run in runs]
    stages = list(dict.fromkeys(name for means in all_means for name in means))
    for stage in stages:
        widths = [means.get(stage, 0.0) for means in all_means]
        ax.barh(names, widths, left=left, label=stage.replace("S", " ").strip() if stage.endswith("S") else stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.legend(fontsize=7, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    return _save(fig, path)


def plot_queue(runs: list[Run], path: Path) -> Path:
    fig, ax = _figure("Queue depth over time", "seconds since the first submission", "messages")
    for run in runs:
        t0 = _start(run) or (run.samples[0]["t"] if run.samples else 0)
        times = [s["t"] - t0 for s in run.samples]
        ax.plot(times, [s["visible"] for s in run.samples], label=f"{run.name} visible")
        ax.plot(times, [s["in_flight"] for s in run.samples], linestyle="--", label=f"{run.name} in flight")
        if any(s["dlq"] for s in run.samples):
            ax.plot(times, [s["dlq"] for s in run.samples], linestyle=":", label=f"{run.name} DLQ")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_probe(runs: list[Run], path: Path) -> Path:
    """Each control-plane request the probe timed, over the run (log scale), p99 as a line."""
    fig, ax = _figure("Control-plane latency under load (the probe)", "seconds since the first submission",
                      "ms (log scale)")
    for run in runs:
        t0 = _start(run) or (run.probes[0]["t"] if run.probes else 0)
        for route, marker in (("GET /jobs/{id}", "o"), ("POST /jobs", "^")):
            rows = [p for p in run.probes if p["route"] == route and p["ok"]]
            if not rows:
                continue
            points = ax.scatter([p["t"] - t0 for p in rows], [p["ms"] for p in rows], s=8, marker=marker,
                                alpha=0.6, label=f"{run.name} {route}")
            p99 = (run.summary.get("probe") or {}).get(route, {}).get("p99Ms")
            if p99:
                ax.axhline(p99, color=points.get_facecolor()[0], alpha=0.5, linestyle="--")
    ax.set_yscale("log")
    ax.legend(fontsize=7, title="dashed: p99", title_fontsize=7)
    return _save(fig, path)


def plot_rtf(runs: list[Run], path: Path) -> Path:
    fig, ax = _figure("Real-time factor per job (audio s / transcription s)", "real-time factor", "jobs")
    for run in runs:
        values = [j["realTimeFactor"] for j in run.jobs if j.get("realTimeFactor")]
        if values:
            ax.hist(values, bins=20, alpha=0.5, label=run.name)
    ax.legend(fontsize=8)
    return _save(fig, path)


COLUMNS = [
    ("run", lambda r: r.name),
    ("engine", lambda r: r.summary["config"].get("engine")),
    ("workers", lambda r: r.summary["config"].get("workers")),
    ("batch", lambda r: r.summary["config"].get("queueConfig", {}).get("batch_size")),
    ("jobs", lambda r: r.summary["jobs"]),
    ("completed", lambda r: r.summary["completed"]),
    ("failed", lambda r: r.summary["failed"]),
    ("DLQ", lambda r: r.summary["deadLettered"]),
    ("unfinished", lambda r: r.summary["unfinished"]),
    ("jobs/s", lambda r: r.summary["jobsPerS"]),
    ("audio s / wall s", lambda r: r.summary["audioSecondsPerWallSecond"]),
    ("p50 s", lambda r: r.summary["latencyS"]["p50"]),
    ("p95 s", lambda r: r.summary["latencyS"]["p95"]),
    ("p99 s", lambda r: r.summary["latencyS"]["p99"]),
    ("upload->start p50 s", lambda r: r.summary["uploadToStartS"]["p50"]),
    ("mean RTF", lambda r: r.summary["meanRealTimeFactor"]),
    ("retries", lambda r: r.summary["retries"]),
    ("fanned out (chunks)", lambda r: f"{r.summary['fannedOut']} ({r.summary['chunks']})"
     if r.summary.get("fannedOut") else None),
    ("max queue", lambda r: r.summary["maxQueueDepth"]),
    ("drain s", lambda r: r.summary["drainS"]),
    ("bare engine audio s / wall s", lambda r: (r.summary.get("bareEngine") or {}).get("audioSecondsPerWallSecond")),
    ("pipeline efficiency", lambda r: r.summary.get("pipelineEfficiency")),
    ("engine share of workers' time", lambda r: r.summary.get("engineShare")),
    ("GET /jobs/{id} p50/p99 ms", lambda r: _probe_cell(r, "GET /jobs/{id}")),
    ("POST /jobs p50/p99 ms", lambda r: _probe_cell(r, "POST /jobs")),
]


def _probe_cell(run: Run, route: str) -> str | None:
    figures = (run.summary.get("probe") or {}).get(route)
    return f"{figures['p50Ms']}/{figures['p99Ms']} ({figures['requests']})" if figures else None


def table_rows(runs: list[Run]) -> list[list[str]]:
    return [[("" if (value := fn(run)) is None else str(value)) for _, fn in COLUMNS] for run in runs]


def write_report(runs: list[Run], out_dir: Path) -> tuple[Path, Path]:
    """report.html (plots embedded) and report.md (plots beside it) in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [
        ("Throughput", plot_throughput(runs, out_dir / "throughput.png")),
        ("Latency", plot_latency_cdf(runs, out_dir / "latency_cdf.png")),
        ("Stages", plot_stages(runs, out_dir / "stages.png")),
        ("Queue", plot_queue(runs, out_dir / "queue_depth.png")),
        ("Real-time factor", plot_rtf(runs, out_dir / "rtf.png")),
    ]
    if any(run.probes for run in runs):
        plots.append(("Control-plane latency", plot_probe(runs, out_dir / "probe_latency.png")))
    headers = [name for name, _ in COLUMNS]
    rows = table_rows(runs)
    md = ["# whisperq load-test report", "", f"{len(runs)} run(s).", "",
          "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    md += ["| " + " | ".join(row) + " |" for row in rows]
    md += ["", "## Configuration of each run", ""]
    for run in runs:
        md.append(f"- **{run.name}**: `{json.dumps(run.summary['config'], sort_keys=True)}`")
    md += ["", "## Stage breakdown (mean seconds per completed job)", ""]
    for run in runs:
        parts = ", ".join(f"{k} {v:.3f}" for k, v in stage_means(run).items())
        md.append(f"- **{run.name}** (from {stage_source(run)}): {parts}")
    for run in runs:
        chaos = run.summary.get("chaos")
        if chaos:
            md += ["", f"## Chaos run invariants: {run.name} ({'all hold' if chaos['ok'] else 'BROKEN'})", "",
                   "| invariant | result | detail |", "|---|---|---|"]
            md += [f"| {c['invariant']} | {'ok' if c['ok'] else 'FAILED'} | {c['detail']} |" for c in chaos["checks"]]
    md += [""] + [f"![{title}]({path.name})" for title, path in plots] + [""]
    markdown_path = out_dir / "report.md"
    markdown_path.write_text("\n".join(md), encoding="utf-8")

    def cell(tag: str, value: str) -> str:
        return f"<{tag}>{html.escape(value)}</{tag}>"

    table = "<table><tr>" + "".join(cell("th", h) for h in headers) + "</tr>"
    table += "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows) + "</table>"
    images = "".join(
        f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' "
        f"src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode('ascii')}'>"
        for title, path in plots
    )
    configs = "".join(f"<li><b>{html.escape(r.name)}</b>: <code>{html.escape(json.dumps(r.summary['config']))}"
                      "</code></li>" for r in runs)
    verdicts = "".join(
        f"<h2>Chaos run invariants: {html.escape(r.name)}</h2><table><tr><th>invariant</th><th>result</th>"
        "<th>detail</th></tr>" + "".join(
            f"<tr>{cell('td', c['invariant'])}{cell('td', 'ok' if c['ok'] else 'FAILED')}{cell('td', c['detail'])}</tr>"
            for c in r.summary["chaos"]["checks"]) + "</table>"
        for r in runs if r.summary.get("chaos"))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>whisperq load-test report</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;text-align:right}th{background:#eee}</style></head><body>"
            f"<h1>whisperq load-test report</h1>{table}<h2>Configuration</h2><ul>{configs}</ul>{verdicts}{images}"
            "</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path, markdown_path
