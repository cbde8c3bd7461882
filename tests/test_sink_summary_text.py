"""What `tootlake sink` says of the tries to write that failed while the lake was out of reach
(`SinkWorkerStats.write_failures`): its progress line and its text summary name them (with
their number) when there were some and say nothing of them when there were none; the JSON
summary always has the count. The text is made inside the command (`tootlake.cli.sink`),
so the command runs here with a stand-in worker that reports given stats: no broker."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import tootlake.kafka.sink
from tootlake.cli import main
from tootlake.cli import sink as sink_cli
from tootlake.kafka.sink import SinkWorkerStats

TOPIC = "posts-in"


def stats_with(write_failures: int) -> SinkWorkerStats:
    stats = SinkWorkerStats(
        messages=1234, dead=2, commits=5, flushes=4, write_failures=write_failures
    )
    stats.rows.update(post=1000, delete=20, reject=3)
    stats.first_message, stats.last_commit = 10.0, 12.0  # 2 s busy: 617 messages/s
    return stats


def run_sink(
    monkeypatch: pytest.MonkeyPatch, lake: str, stats: SinkWorkerStats, *args: str
) -> tuple[str, list[str]]:
    """`tootlake sink` whose worker reports `stats` once as progress, then returns them: what
    it printed on stdout, and the progress lines it showed."""
    shown: list[str] = []

    class Worker:
        def __init__(self, lake: str, **options: Any) -> None:
            self.on_progress: Callable[[SinkWorkerStats], None] | None = None
            self.on_leaving: Callable[[], None] | None = None

        def run(self) -> SinkWorkerStats:
            if self.on_progress is not None:
                self.on_progress(stats)
            return stats

    @contextmanager
    def step_line(quiet: bool, title: str) -> Iterator[Callable[[str], None] | None]:
        assert title == f"Sinking {TOPIC}"
        yield None if quiet else shown.append  # (as a terminal's stderr would have it)

    monkeypatch.setattr(tootlake.kafka.sink, "KafkaSinkWorker", Worker)
    monkeypatch.setattr(sink_cli, "step_line", step_line)
    # (the command tunes the process's garbage collector: not the test run's)
    monkeypatch.setattr(
        sink_cli, "gc", SimpleNamespace(freeze=lambda: None, set_threshold=lambda *a: None)
    )
    # (through the group, as a user calls it: a command invoked on its own caches a help
    # option without the group's `-h`, which then shows in the generated docs/cli.md)
    result = CliRunner().invoke(
        main, ["sink", "--kafka", "127.0.0.1:1", "--topic", TOPIC, "--lake", lake, *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout, shown


SUMMARY = (
    "Sank 1,234 messages of {topic} into {lake}: 1,000 posts, 20 deletes, 3 rejects, "
    "2 dead letters; 4 flushes, 5 Delta commits; 617 messages/s."
)
PROGRESS = "1,234 messages, 1,000 posts, 5 Delta commits, 617 messages/s"


def test_no_failed_write_is_mentioned_when_there_was_none(monkeypatch, lake):
    out, shown = run_sink(monkeypatch, lake, stats_with(0))
    assert out == SUMMARY.format(topic=TOPIC, lake=lake) + "\n"
    assert shown == [PROGRESS]
    # (not in the lake's path either: pytest names the temporary folder after the test)
    assert "fail" not in out.replace(lake, "LAKE") and "fail" not in shown[0]


@pytest.mark.parametrize(
    ("failures", "said"), [(1, "1 try"), (3, "3 tries"), (1234, "1,234 tries")]
)
def test_failed_tries_are_counted_in_the_summary_and_the_progress_line(
    monkeypatch, lake, failures, said
):
    """Tries, not writes: the partitions whose flushes fail together are one try."""
    out, shown = run_sink(monkeypatch, lake, stats_with(failures))
    assert out == (
        SUMMARY.format(topic=TOPIC, lake=lake) + f" {said} to write failed (see the log).\n"
    )
    number, noun = said.split(" ")
    assert shown == [f"{PROGRESS}, {number} failed {noun} to write"]


@pytest.mark.parametrize("failures", [0, 3])
def test_the_json_summary_counts_the_failed_writes(monkeypatch, lake, failures):
    out, _ = run_sink(monkeypatch, lake, stats_with(failures), "--format", "json")
    summary = json.loads(out)
    assert summary["write_failures"] == failures
    assert summary == stats_with(failures).as_dict()


def test_quiet_shows_no_progress_line_and_keeps_the_failed_writes_in_the_summary(monkeypatch, lake):
    out, shown = run_sink(monkeypatch, lake, stats_with(3), "--quiet")
    assert shown == []
    assert out.endswith("617 messages/s. 3 tries to write failed (see the log).\n")
