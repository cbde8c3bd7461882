"""Benchmark of the HTML report ("Pictures people would rather look at") against the talk's
notebook procedure with its charts, on the same posts, in the same run.

    ours   write_html_report(lake, path): every query of the report in DuckDB over the
           Parquet lake, 8 charts drawn from the aggregates (matplotlib, SVG), one HTML file.
    talk   the 2023 talk's notebook, step by step (its slides, and its demo notebook for what
           the slides leave out): the Kafka-Connect Parquet files loaded into an in-memory
           DuckDB table joined to language.csv; the daily table with mode(); `select *` frames
           in pandas; seaborn `countplot(data=mastodon_app_df, y="app")` (slide "Mastodon App
           Landscape"), `lineplot(x="created_hour", y="num", hue="created_day")` (hour of day),
           `countplot(y="language_name")` of the top 20 languages, and `boxplot(x="characters",
           y="language_name", orient="h")` over every post with a language (slide "Toot Length
           by Language Usage"); the terms with ilike; the longest toot; the statistics query of
           the last slide. Figures are saved as PNG, as the notebook's inline backend shows them.

The talk's procedure is given every benefit: DuckDB's Python API instead of jupysql's %%sql
magic (no SQLAlchemy round trip), local files instead of S3, each figure closed once saved (a
notebook keeps them), 4 charts against 8, and no HTML page.

Each procedure runs in a fresh Python process (imports included in its time) and reports its
own peak RSS (the kernel's high-water mark, DuckDB's memory included). Runs alternate between
the two; figures are medians over `--repeat` runs.

Inputs are bench/run.py's analysis dataset (bench/datasets.py: the same posts as a tootlake
lake and as the talk's 1,000 Kafka-Connect files, with its language.csv), built on first use:

    python bench/report_bench.py                   # the talk's 1,622,149 posts
    python bench/report_bench.py --posts 50000     # a smaller one, for a quick look
    python bench/report_bench.py --lake L --topics T --language-csv C

Results: bench/results/report.json and report.md (`--name` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The talk's queries, as bench/talk_notebook.py runs them (one copy; bench/ is on sys.path
# when this runs as a script).
from talk_notebook import DAILY, LONGEST, STATISTICS, load_tables

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "data" / "report"  # the last run's outputs (git-ignored)
TALK_POSTS = 1_622_149
RESULTS = ROOT / "bench" / "results"
TARGET_SPEEDUP = 3.0
TARGET_RSS_MB = 745.5  # the talk: "1.6 million toots in DuckDB's memory only 745.5MB"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ----------------------------------------------------------------------------------------
# the two procedures (each runs in its own process)


def run_ours(lake: str, out: str) -> dict[str, Any]:
    phases: dict[str, float] = {}
    t = time.perf_counter()
    from tootlake.analysis.html import render_html_report
    from tootlake.analysis.report import build_report
    from tootlake.lake.reader import open_lake

    phases["import"] = time.perf_counter() - t
    t = time.perf_counter()
    con = open_lake(lake)
    report = build_report(con=con)
    phases["queries"] = time.perf_counter() - t
    t = time.perf_counter()
    # what write_html_report(lake, out, report=report) does: the extra queries (instances,
    # observers, lake facts), the charts, the page
    page = render_html_report(lake, report=report, con=con)
    Path(out).write_text(page, encoding="utf-8")
    phases["charts_and_page"] = time.perf_counter() - t
    return {
        "phases": phases,
        "output_bytes": len(page.encode()),
        "charts": page.count('<svg class="chart"'),
        "posts": report["summary"].column("posts")[0].as_py(),
    }


TALK_TERMS = """
select strftime(created_tz, '%Y/%m/%d %a') as "Created day"
, count(*) as "Num toots"
, sum(case when mastodon_text ilike '%balloon%' then 1 else 0 end) as cnt_balloon
, sum(case when mastodon_text ilike '%earthquake%' then 1 else 0 end) as cnt_earthquake
, sum(case when mastodon_text ilike '%superbowl%' then 1 else 0 end) as cnt_superbowl
, sum(case when mastodon_text ilike '%chatgpt%' then 1 else 0 end) as cnt_chatgpt
from mastodon_toot
group by 1
order by 1
"""


def run_talk(source: str, out: str) -> dict[str, Any]:
    topics, language_csv = source.split(os.pathsep)
    phases: dict[str, float] = {}
    t = time.perf_counter()
    import io

    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd  # noqa: F401 - the notebook's imports
    import seaborn as sns

    phases["import"] = time.perf_counter() - t
    figures: list[int] = []

    def show() -> None:  # what the inline backend does with the cell's figure
        buffer = io.BytesIO()
        plt.gcf().savefig(buffer, format="png", bbox_inches="tight")
        figures.append(len(buffer.getvalue()))
        plt.close("all")

    t = time.perf_counter()
    con = duckdb.connect(":memory:")
    load_tables(con, topics, language_csv)
    phases["load"] = time.perf_counter() - t

    t = time.perf_counter()
    daily = con.sql(DAILY).df()
    phases["daily"] = time.perf_counter() - t

    t = time.perf_counter()
    # slide "Mastodon App Landscape" (the demo notebook's top 10, as our chart shows the top)
    mastodon_app_df = con.sql(
        "select * from mastodon_toot where app is not null and app <> '' and bot='False'"
    ).df()
    sns.countplot(
        data=mastodon_app_df, y="app", order=mastodon_app_df.app.value_counts().iloc[:10].index
    )
    show()
    del mastodon_app_df
    phases["apps"] = time.perf_counter() - t

    t = time.perf_counter()
    mastodon_usage_df = con.sql("""
        select strftime(created_tz, '%Y/%m/%d %a') as created_day
        , date_part('hour', created_tz) as created_hour
        , count(*) as num
        from mastodon_toot
        group by 1,2
        order by 1,2
    """).df()
    sns.lineplot(data=mastodon_usage_df, x="created_hour", y="num", hue="created_day").set_xticks(
        range(24)
    )
    show()
    phases["hourly"] = time.perf_counter() - t

    t = time.perf_counter()
    mastodon_usage_df = con.sql("select * from mastodon_toot").df()
    sns.countplot(
        data=mastodon_usage_df,
        y="language_name",
        order=mastodon_usage_df.language_name.value_counts().iloc[:20].index,
    )
    show()
    del mastodon_usage_df
    phases["languages"] = time.perf_counter() - t

    t = time.perf_counter()
    # slide "Toot Length by Language Usage" (the top 20 languages, as our chart)
    mastodon_lang_df = con.sql("select * from mastodon_toot where language not in ('unknown')").df()
    sns.boxplot(
        data=mastodon_lang_df,
        x="characters",
        y="language_name",
        orient="h",
        order=mastodon_lang_df.language_name.value_counts().iloc[:20].index,
    )
    show()
    del mastodon_lang_df
    phases["length_by_language"] = time.perf_counter() - t

    t = time.perf_counter()
    terms = con.sql(TALK_TERMS).df()
    longest = con.sql(LONGEST).df()
    summary = con.sql(STATISTICS).df()
    phases["terms_longest_summary"] = time.perf_counter() - t
    Path(out).write_text(
        json.dumps({"daily": len(daily), "terms": len(terms), "longest": len(longest)}),
        encoding="utf-8",
    )
    return {
        "phases": phases,
        "figures": len(figures),
        "png_bytes": sum(figures),
        "posts": int(summary["toots"][0]),
    }


# ----------------------------------------------------------------------------------------
# inputs


def inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The lake, the talk's files and its language.csv: given, or bench/datasets.py's."""
    if args.lake:
        if not (args.topics and args.language_csv):
            raise SystemExit("--lake needs --topics and --language-csv too")
        lake, topics, csv = args.lake, args.topics, args.language_csv
        edited = args.edited_lake
    else:
        sys.path.insert(0, str(ROOT / "bench"))
        from datasets import analysis_dataset  # bench/run.py's inputs, cached in bench/data

        data = analysis_dataset(args.posts, args.seed)
        lake, topics, csv = str(data.lake), str(data.topics), str(data.language_csv)
        edited = str(getattr(data, "edited_lake", "") or "") or None
    if edited and not Path(edited).is_dir():
        edited = None

    def size(folder: str) -> tuple[int, float]:
        files = list(Path(folder).rglob("*.parquet"))
        return len(files), round(sum(f.stat().st_size for f in files) / 2**20, 1)

    lake_files, lake_mb = size(lake)
    talk_files, talk_mb = size(topics)
    return {
        "lake": lake,
        "edited_lake": edited,
        "topics": topics,
        "language_csv": csv,
        "lake_files": lake_files,
        "lake_mb": lake_mb,
        "talk_files": talk_files,
        "talk_mb": talk_mb,
    }


# ----------------------------------------------------------------------------------------
# the run


def child(which: str, source: str, out: str) -> None:
    started = time.perf_counter()
    result = run_ours(source, out) if which == "ours" else run_talk(source, out)
    result["seconds_in_process"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # every thread, DuckDB's too
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(which: str, source: str, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, __file__, "_child", which, source, str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"the {which} run failed:\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["seconds"] = wall  # interpreter start and imports included
    return result


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("tootlake", "duckdb", "pyarrow", "matplotlib", "jinja2", "pandas", "seaborn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=TALK_POSTS, help="size of the dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lake", help="a tootlake lake (instead of the dataset's)")
    parser.add_argument("--topics", help="the talk's partition=0 folder of the same posts")
    parser.add_argument("--language-csv", help="the talk's language.csv")
    parser.add_argument("--edited-lake", help="the lake plus edits and deletes (measured apart)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--name", default="report", help="results file name (without suffix)")
    args = parser.parse_args()

    data = inputs(args)
    out_dir = WORK
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = {
        "ours": data["lake"],
        "talk": os.pathsep.join([data["topics"], data["language_csv"]]),
    }
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "talk": []}
    if data["edited_lake"]:
        sources["ours_edited"] = data["edited_lake"]
        runs["ours_edited"] = []
    for i in range(args.repeat):
        order = ["ours", "talk"] if i % 2 == 0 else ["talk", "ours"]
        order += ["ours_edited"] if "ours_edited" in sources else []
        for which in order:
            out = out_dir / ("talk.json" if which == "talk" else f"{which}.html")
            result = measure("talk" if which == "talk" else "ours", sources[which], out)
            runs[which].append(result)
            log = (
                f"run {i + 1} {which}: {result['seconds']:.2f} s, {result['cpu_seconds']:.1f} s CPU"
            )
            print(f"{log}, peak RSS {result['peak_rss_mb']:.0f} MB", file=sys.stderr)

    summary = {}
    for which, results in runs.items():
        phases = {
            k: round(median([r["phases"][k] for r in results]), 3) for k in results[0]["phases"]
        }
        summary[which] = {
            "seconds": round(median([r["seconds"] for r in results]), 2),
            "seconds_all": [round(r["seconds"], 2) for r in results],
            "cpu_seconds": round(median([r["cpu_seconds"] for r in results]), 2),
            "cpu_seconds_all": [round(r["cpu_seconds"], 2) for r in results],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in results), 1),
            "peak_rss_mb_all": [round(r["peak_rss_mb"], 1) for r in results],
            "phases": phases,
            "posts": results[0]["posts"],
        }
    for which in ("ours", "ours_edited"):
        if which in summary:
            summary[which].update(
                charts=runs[which][0]["charts"], output_bytes=runs[which][0]["output_bytes"]
            )
    summary["talk"].update(
        figures=runs["talk"][0]["figures"], png_bytes=runs["talk"][0]["png_bytes"]
    )
    speedup = summary["talk"]["seconds"] / summary["ours"]["seconds"]
    cpu_ratio = summary["talk"]["cpu_seconds"] / summary["ours"]["cpu_seconds"]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    result = {
        "benchmark": "HTML report with all charts vs the talk's notebook procedure with its charts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "memory_gb": round(memory, 1),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": versions(),
        "inputs": data,
        "repeat": args.repeat,
        "ours": summary["ours"],
        "talk": summary["talk"],
        "ours_edited": summary.get("ours_edited"),
        "speedup": round(speedup, 2),
        "cpu_ratio": round(cpu_ratio, 2),
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "speedup_met": speedup >= TARGET_SPEEDUP,
            "peak_rss_mb": TARGET_RSS_MB,
            "peak_rss_met": summary["ours"]["peak_rss_mb"] < TARGET_RSS_MB,
        },
    }
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results_dir / f"{args.name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    ours, talk, inputs, t = r["ours"], r["talk"], r["inputs"], r["targets"]
    v = r["versions"]
    lines = [
        "# HTML report vs the talk's notebook",
        "",
        f"{r['date']} · {r['machine']['cores']} cores, {r['machine']['memory_gb']} GB · "
        f"Python {v['python']}, DuckDB {v['duckdb']}, matplotlib {v['matplotlib']}, "
        f"pandas {v['pandas']}, seaborn {v['seaborn']}",
        "",
        f"Same {ours['posts']:,} posts: the lake `{inputs['lake']}` "
        f"({inputs['lake_files']:,} files, {inputs['lake_mb']:,} MB) and its copy in the talk's "
        "Kafka-Connect layout "
        f"`{inputs['topics']}` ({inputs['talk_files']:,} files, {inputs['talk_mb']:,} MB). "
        f"Medians of {r['repeat']} runs, each in a fresh process (imports included), "
        "alternating.",
        "",
        "| | seconds | CPU seconds | peak RSS (MB) | output |",
        "|---|---:|---:|---:|---|",
        f"| tootlake `write_html_report` | {ours['seconds']:.2f} | {ours['cpu_seconds']:.1f} | "
        f"{ours['peak_rss_mb']:,.0f} | "
        f"one HTML file, {ours['charts']} SVG charts, {ours['output_bytes'] / 1024:,.0f} KB |",
        f"| the talk's notebook procedure | {talk['seconds']:.2f} | {talk['cpu_seconds']:.1f} | "
        f"{talk['peak_rss_mb']:,.0f} | "
        f"{talk['figures']} seaborn PNG figures, tables as DataFrames |",
        *(
            [
                f"| tootlake, the same posts plus the stream's edits and deletes "
                f"({r['ours_edited']['posts']:,} posts once resolved) | "
                f"{r['ours_edited']['seconds']:.2f} | {r['ours_edited']['cpu_seconds']:.1f} | "
                f"{r['ours_edited']['peak_rss_mb']:,.0f} | the same page |"
            ]
            if r.get("ours_edited")
            else []
        ),
        "",
        f"**{r['speedup']:.1f}x faster** (target {t['speedup']:.0f}x: "
        f"{'met' if t['speedup_met'] else 'NOT met'}); "
        f"peak RSS {ours['peak_rss_mb']:,.0f} MB (target below {t['peak_rss_mb']} MB: "
        f"{'met' if t['peak_rss_met'] else 'NOT met'}). In CPU time (user + system, every "
        f"thread): {r['cpu_ratio']:.1f}x less. Load average at the end: "
        f"{', '.join(map(str, r['machine']['load_average_at_end']))} (2 cores, shared).",
        "",
        "Phases (median seconds):",
        "",
        "| tootlake | s | | talk | s |",
        "|---|---:|---|---|---:|",
    ]
    ours_phases, talk_phases = list(ours["phases"].items()), list(talk["phases"].items())
    for i in range(max(len(ours_phases), len(talk_phases))):
        a = ours_phases[i] if i < len(ours_phases) else ("", None)
        b = talk_phases[i] if i < len(talk_phases) else ("", None)
        fa = f"{a[1]:.2f}" if a[1] is not None else ""
        fb = f"{b[1]:.2f}" if b[1] is not None else ""
        lines.append(f"| {a[0]} | {fa} | | {b[0]} | {fb} |")
    lines += [
        "",
        f"All runs, seconds: tootlake {ours['seconds_all']}, talk {talk['seconds_all']}; "
        f"peak RSS MB: tootlake {ours['peak_rss_mb_all']}, talk {talk['peak_rss_mb_all']}.",
        "",
        "The talk's procedure is favoured: DuckDB's Python API instead of jupysql's `%%sql`, each "
        "figure closed once saved, 4 charts against 8, no page. See bench/report_bench.py.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
