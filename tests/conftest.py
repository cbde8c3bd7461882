"""Shared fixtures. Every test runs with a clean tootlake/AWS environment, so a developer's
shell cannot change results."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

# No per-example time limit: CI machines are slower and shared with a Kafka broker, S3 and
# Chromium, and one stall turned a property test into a "deadline exceeded" or Flaky failure
# that says nothing about the code. Speed is measured by the benchmarks, not here.
settings.register_profile("tootlake", deadline=None)
settings.load_profile("tootlake")

# bench/ holds the talk-shaped generator (talkshape.py), which tests use and the wheel does
# not ship: importable as `talkshape` here as in the benchmarks, whose script folder it is.
BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "real"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for key in list(os.environ):
        if key.startswith(("TOOTLAKE_", "AWS_")):
            monkeypatch.delenv(key)
    # No developer config file either.
    monkeypatch.setenv("TOOTLAKE_CONFIG", os.devnull)


def real_lines(name: str) -> list[str]:
    # split on \n only: str.splitlines() also splits inside JSON strings (U+2028...)
    return (REAL / name).read_text(encoding="utf-8").rstrip("\n").split("\n")


def real_status(name: str, line: int) -> dict[str, Any]:
    """The status on 1-based `line` of a recorded JSON-lines file."""
    return json.loads(real_lines(name)[line - 1])


def all_real_statuses() -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(where, observed_on, status) for every recorded status in tests/fixtures/real."""
    hosts = {"mastodonsocial.json": "mastodon.social", "malformed.json": "fosstodon.org"}
    for name, host in hosts.items():
        for number, line in enumerate(real_lines(name), 1):
            try:
                status = json.loads(line)
            except ValueError:
                continue  # malformed.json line 50 is truncated on purpose
            yield f"{name}:{number}", host, status
    for number, line in enumerate(real_lines("timelines.jsonl"), 1):
        wrapped = json.loads(line)
        yield f"timelines.jsonl:{number}", wrapped["observed_on"], wrapped["status"]


@pytest.fixture
def lake(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Browser tests last: Playwright's sync API must not share the main thread's event loop
    # state with the asyncio suites (simulate, collect) that run before it.
    items.sort(key=lambda item: "tests/browser/" in str(item.fspath).replace("\\", "/"))


def native() -> ModuleType:
    """tootlake_native (native/, built by `make install`); a test needing it fails, never
    skips, without it."""
    try:
        import tootlake_native
    except ImportError as error:
        pytest.fail(
            f"tootlake_native cannot be imported ({error}): run `make install`", pytrace=False
        )
    return tootlake_native
