"""A sink worker that dies the way a SIGKILL would (os._exit, no cleanup) right after the files
of its Nth flush are durable and before their offsets are committed: the one window where a
crash leaves files the group has not committed. Prints those files' paths as JSON first.

    python tests/kafka/crashing_sink.py KAFKA TOPIC GROUP LAKE MAX_BYTES N [KEY=VALUE ...]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from tootlake.sinks.kafka_sink import KafkaSinkWorker


class CrashingWorker(KafkaSinkWorker):
    crash_at = 1
    flushes = 0
    committed_paths = 0

    def _commit(self, offsets: list[Any], reason: str) -> None:
        self.flushes += 1
        if self.flushes == self.crash_at:
            print(json.dumps(self.stats.paths[self.committed_paths :]), flush=True)
            os._exit(137)
        super()._commit(offsets, reason)
        self.committed_paths = len(self.stats.paths)


def main() -> None:
    kafka, topic, group, lake, max_bytes, crash_at, *options = sys.argv[1:]
    config = dict(option.split("=", 1) for option in options)
    worker = CrashingWorker(
        lake, kafka=kafka, topic=topic, group=group, max_bytes=int(max_bytes), max_age=3600,
        until_idle=10,
        config=config,
    )  # fmt: skip
    worker.crash_at = int(crash_at)
    worker.run()
    print("[]", flush=True)  # finished before the crash point


if __name__ == "__main__":
    main()
