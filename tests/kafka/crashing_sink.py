"""A sink worker that dies the way a SIGKILL would (os._exit, no cleanup) at a chosen point of
a flush, after printing what it had committed (JSON) on stdout:

    before-posts_all  in the Nth flush that committed rows to deletes, sightings or rejects,
                      right before its posts_all commit: the batch is partly in the lake;
                      prints {"partition": P, "last": L, "tables": [tables committed]}
    before-offsets    right after the Nth flush's posts_all commit, before the group offsets
                      are committed: the lake is ahead of the group; prints {"offsets": {P: O}}
                      (the group offsets it did not commit)

    python tests/kafka/crashing_sink.py KAFKA TOPIC GROUP LAKE MAX_BYTES N WHERE [KEY=VALUE ...]

Prints `null` when the topic ran out before the crash point.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from tootlake.kafka.sink import KafkaSinkWorker
from tootlake.lake.layout import POSTS_ALL


class CrashingWorker(KafkaSinkWorker):
    where = "before-posts_all"
    crash_at = 1
    seen = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._batches: dict[str, tuple[int, list[str]]] = {}  # app -> (last, tables committed)

    def _before_commit(self, table: str, app: str, last: int) -> None:
        if self.where != "before-posts_all":
            return
        with self._lock:
            batch_last, committed = self._batches.get(app, (last, []))
            if batch_last != last:
                committed = []
            if table != POSTS_ALL:
                self._batches[app] = (last, [*committed, table])
                return
            self._batches.pop(app, None)
            if not committed:
                return
            self.seen += 1
            if self.seen == self.crash_at:
                partition = int(app.rsplit("/", 1)[1])
                crash({"partition": partition, "last": last, "tables": committed})

    def _commit_offsets(self, reason: str, partitions: list[int] | None = None) -> None:
        if self.where == "before-offsets" and self._pending_offsets and partitions is None:
            self.seen += 1
            if self.seen == self.crash_at:
                crash({"offsets": self._pending_offsets})
        super()._commit_offsets(reason, partitions)


def crash(what: dict[str, Any]) -> None:
    print(json.dumps(what), flush=True)
    os._exit(137)


def main() -> None:
    kafka, topic, group, lake, max_bytes, crash_at, where, *options = sys.argv[1:]
    config = dict(option.split("=", 1) for option in options)
    worker = CrashingWorker(
        lake, kafka=kafka, topic=topic, group=group, max_bytes=int(max_bytes), max_age=3600,
        until_idle=10, config=config,
    )  # fmt: skip
    worker.crash_at = int(crash_at)
    worker.where = where
    worker.run()
    print("null", flush=True)  # finished before the crash point


if __name__ == "__main__":
    main()
