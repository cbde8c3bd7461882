"""Analyses of the lake with DuckDB: `open_lake()` and one function per question."""

from tootlake.analysis.queries import (
    DEFAULT_TERMS,
    apps,
    daily,
    hashtags,
    hourly,
    languages,
    length_by_language,
    longest,
    summary,
    terms,
)
from tootlake.analysis.report import build_report, render_report
from tootlake.lake.reader import open_lake

__all__ = [
    "DEFAULT_TERMS",
    "apps",
    "build_report",
    "daily",
    "hashtags",
    "hourly",
    "languages",
    "length_by_language",
    "longest",
    "open_lake",
    "render_report",
    "summary",
    "terms",
]
