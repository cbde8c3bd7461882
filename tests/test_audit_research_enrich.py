"""Hostile review of `tootlake enrich` (audit): a post of megabytes (a server can send one)
costs lingua about a second and 10 MB of memory per MB, in a batch of 20,000 posts; only its
first MAX_TEXT characters are needed to tell its language."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tootlake.lake.enrich import MAX_TEXT, detect_languages, detector, enrich
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay

ENGLISH = "the quick brown fox jumps over the lazy dog while we watch it "


@pytest.fixture(scope="module")
def lingua() -> Any:
    return detector(low_accuracy=True)  # (trigrams only: seconds to load, not a gigabyte)


class Recording:
    """A real lingua detector that notes the length of each text it is given."""

    def __init__(self, detect: Any) -> None:
        self.detect = detect
        self.lengths: list[int] = []

    def compute_language_confidence_values_in_parallel(self, texts: list[str]) -> Any:
        self.lengths += [len(t) for t in texts]
        return self.detect.compute_language_confidence_values_in_parallel(texts)


def test_a_huge_text_is_detected_from_its_first_characters(lingua):
    recording = Recording(lingua)
    found = detect_languages([ENGLISH * 40_000, None, "", "😀" * 10_000], detect=recording)
    assert found[0][0] == "en" and found[1:] == [(None, None)] * 3
    assert recording.lengths and max(recording.lengths) <= MAX_TEXT


def test_enrich_gives_a_huge_post_its_row(tmp_path, lingua):
    status = {
        "id": "109000000000000001",
        "uri": "https://home.example/users/a/statuses/109000000000000001",
        "created_at": "2025-01-02T03:04:05.000Z",
        "visibility": "public",
        "content": f"<p>{ENGLISH * 8_000}</p>",  # 500 KB
        "account": {"id": "1", "username": "a", "acct": "a"},
    }
    capture = tmp_path / "in.jsonl"
    capture.write_text(json.dumps(status) + "\n", encoding="utf-8")
    lake = str(tmp_path / "lake")
    replay([capture], lake, observed_on="home.example", workers=1)
    stats = enrich(lake, low_accuracy=True)
    assert (stats.examined, stats.detected) == (1, 1)
    rows = open_lake(lake).execute("SELECT language_detected FROM languages").fetchall()
    assert rows == [("en",)]
