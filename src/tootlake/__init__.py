"""tootlake: collect public Mastodon posts into a lake of Delta tables and study them with DuckDB.

from tootlake import from_status, open_lake, replay
replay(["statuses.jsonl"], "./lake")
con = open_lake("./lake")
con.sql("SELECT language, count(*) FROM posts GROUP BY ALL").show()
"""

from __future__ import annotations

from typing import Any

from tootlake._version import __version__

__all__ = ["Post", "__version__", "from_status", "open_lake", "replay"]


def __getattr__(name: str) -> Any:
    # Lazy: `import tootlake` and `tootlake --help` stay fast and need no optional extras.
    if name in {"Post", "from_status"}:
        from tootlake import record

        return getattr(record, name)
    if name == "open_lake":
        from tootlake.lake.reader import open_lake

        return open_lake
    if name == "replay":
        from tootlake.pipeline import replay

        return replay
    raise AttributeError(f"module 'tootlake' has no attribute {name!r}")
