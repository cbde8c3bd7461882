"""Language identification (`tootlake enrich`, the `languages` view) and the analyses of tags
versus text, on the recorded real statuses: every answer is computed again here from the raw
statuses, never from the lake. The true language of each real post is in
tests/fixtures/languages.csv (labelled by reading each text: see docs/analyses.md)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from tootlake.analysis import queries
from tootlake.analysis.report import build_report, render_report
from tootlake.cli import main
from tootlake.lake.enrich import MIN_LETTERS, detect_languages, enrich, letters, plain_words
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay
from tootlake.record import from_status, skip_reason

from .conftest import FIXTURES, REAL, all_real_statuses
from .smalllake import write_inputs

pytest.importorskip("lingua")

REAL_FILES = [REAL / "mastodonsocial.json", REAL / "malformed.json", REAL / "timelines.jsonl"]
# At least this share of the labelled real posts gets its true language (measured: 99.8%,
# bench/results/languages.md); the clients' tags get far fewer right.
MIN_ACCURACY = 0.98


def labels() -> dict[str, str]:
    lines = (FIXTURES / "languages.csv").read_text(encoding="utf-8").splitlines()
    rows = csv.DictReader(line for line in lines if not line.startswith("#"))
    return {row["uri"]: row["language"] for row in rows}


def latest_posts() -> dict[str, object]:
    """The post of each uri as the lake's `posts` view keeps it, from the raw statuses: the
    latest version (an edit beats the original; the author's own server's copy wins)."""
    best: dict[str, tuple[tuple[object, ...], object]] = {}
    for order, (_, observed_on, status) in enumerate(all_real_statuses()):
        if skip_reason(status) is not None:
            continue
        post = from_status(status, observed_on)
        edited = post.edited_at.replace(microsecond=0) if post.edited_at else None
        key = (edited is not None, edited or 0, post.local, post.edited_at or 0, order)
        if post.uri not in best or key > best[post.uri][0]:
            best[post.uri] = (key, post)
    return {uri: post for uri, (_, post) in best.items()}


@pytest.fixture(scope="module")
def real_lake(tmp_path_factory) -> str:
    lake = str(tmp_path_factory.mktemp("real") / "lake")
    replay(REAL_FILES, lake)
    enrich(lake)
    return lake


@pytest.fixture(scope="module")
def detected() -> dict[str, tuple[str | None, float | None]]:
    """The detection of every real post with enough characters, made here without the lake."""
    posts = [p for p in latest_posts().values() if (p.characters or 0) >= MIN_LETTERS]
    found = detect_languages([p.text for p in posts])
    return {p.uri: f for p, f in zip(posts, found, strict=True)}


def test_plain_words_leave_out_links_mentions_hashtags_and_emoji_codes():
    text = "@alice@example.org Schau mal https://example.org/x?y=1 :blobcat: #IchBinHanna toll"
    assert plain_words(text) == "Schau mal toll"
    assert letters("Schau mal toll") == 12
    assert detect_languages(["#rstats https://x.y @bob"]) == [(None, None)]


def test_detection_accuracy_on_labelled_real_posts(detected):
    truth = labels()
    posts = latest_posts()
    assert set(truth) <= set(posts)
    judged = {uri: lang for uri, lang in truth.items() if lang != "und"}
    right = sum(detected[uri][0] == lang for uri, lang in judged.items())
    tags_right = sum(
        (posts[uri].language or "").split("-")[0].lower() == lang for uri, lang in judged.items()
    )
    accuracy = right / len(judged)
    print(f"lingua {right}/{len(judged)} = {accuracy:.1%}; tags {tags_right}/{len(judged)}")
    assert len(judged) >= 400
    assert accuracy >= MIN_ACCURACY
    assert tags_right < right  # the point of detecting: the tags are wrong more often
    # every labelled post was detected, and every post detected is labelled
    assert {uri for uri, f in detected.items() if f[0]} == set(truth)


def test_enrich_writes_one_row_per_post_with_enough_text(real_lake, detected):
    con = open_lake(real_lake)
    rows = con.execute(
        "SELECT uri, language_detected, language_confidence FROM languages"
    ).fetchall()
    assert len(rows) == len({r[0] for r in rows}) == len(detected)
    for uri, language, confidence in rows:
        assert (language, None if confidence is None else round(confidence, 9)) == (
            detected[uri][0],
            None if detected[uri][1] is None else round(detected[uri][1], 9),
        )
    # a second run has nothing left to do
    again = enrich(real_lake)
    assert (again.examined, again.detected) == (0, 0)
    assert again.skipped_short == sum(
        1 for p in latest_posts().values() if (p.characters or 0) < MIN_LETTERS
    )


def test_language_tags_versus_text_equal_the_hand_computed_answer(real_lake, detected):
    posts = latest_posts()
    pairs: Counter[tuple[str | None, str]] = Counter()
    for uri, (language, _) in detected.items():
        if language is None:
            continue
        tag = posts[uri].language
        pairs[(tag.split("-")[0].lower() if tag else None, language)] += 1

    per_tag: dict[str, Counter[str]] = defaultdict(Counter)
    for (tag, language), n in pairs.items():
        if tag is not None:
            per_tag[tag][language] += n
    expected_tags = []
    for tag, found in per_tag.items():
        total = sum(found.values())
        others = {lang: n for lang, n in found.items() if lang != tag}
        top = min(others, key=lambda lang: (-others[lang], lang)) if others else None
        expected_tags.append(
            {
                "language": tag,
                "posts": total,
                "other": sum(others.values()),
                "other_share": round(sum(others.values()) / total, 4),
                "top_other": top,
            }
        )
    expected_tags.sort(key=lambda r: (-r["posts"], r["language"]))

    con = open_lake(real_lake)
    got = queries.language_tags(con).to_pylist()
    keys = ("language", "posts", "other", "other_share", "top_other")
    assert [{k: r[k] for k in keys} for r in got] == expected_tags
    assert got[0]["language_name"] == "English"

    confusions = sorted(
        ((tag, lang, n) for (tag, lang), n in pairs.items() if tag and tag != lang),
        key=lambda t: (-t[2], t[0], t[1]),
    )[:20]
    got = queries.language_confusions(con).to_pylist()
    assert [(r["tagged"], r["detected"], r["posts"]) for r in got] == confusions
    assert ("en", "de") in {(r["tagged"], r["detected"]) for r in got}  # tagged en, in German

    untagged = Counter({lang: n for (tag, lang), n in pairs.items() if tag is None})
    got = queries.untagged_languages(con).to_pylist()
    assert [(r["language"], r["posts"]) for r in got] == sorted(
        untagged.items(), key=lambda t: (-t[1], t[0])
    )
    assert untagged  # the real data has posts without a tag


def test_report_says_to_run_enrich_until_it_has(tmp_path, lake):
    jsonl, sse = write_inputs(tmp_path / "input")
    replay([jsonl], lake)
    con = open_lake(lake)
    assert con.execute("SELECT count(*) FROM languages").fetchone() == (0,)
    names = [d[0] for d in con.execute("DESCRIBE languages").fetchall()]
    assert names == [
        "uri", "language_detected", "language_confidence", "detected_at", "detector", "date"
    ]  # fmt: skip
    report = build_report(con=con)
    assert report["language_tags"].num_rows == 0
    assert "run `tootlake enrich`" in render_report(report, "table")
    assert "run `tootlake enrich`" in render_report(report, "markdown")


def test_enrich_command_goes_on_where_it_stopped(tmp_path, lake):
    replay([REAL / "mastodonsocial.json"], lake)
    runner = CliRunner()
    first = runner.invoke(main, ["enrich", "--lake", lake, "--limit", "10", "--format", "json"])
    assert first.exit_code == 0, first.output
    assert '"examined": 10' in first.output
    second = runner.invoke(main, ["enrich", "--lake", lake])
    assert second.exit_code == 0, second.output
    assert "Detected languages in" in second.output
    con = open_lake(lake)
    ((rows, uris),) = con.execute("SELECT count(*), count(DISTINCT uri) FROM languages").fetchall()
    ((eligible,),) = con.execute(
        f"SELECT count(*) FROM posts WHERE characters >= {MIN_LETTERS}"
    ).fetchall()
    assert rows == uris == eligible


def test_enrich_without_lingua_names_the_extra(monkeypatch, lake):
    import builtins

    real_import = builtins.__import__

    def no_lingua(name, *args, **kwargs):
        if name == "lingua":
            raise ImportError("no lingua")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lingua)
    Path(lake).mkdir()
    result = CliRunner().invoke(main, ["enrich", "--lake", lake])
    assert result.exit_code == 1
    assert 'pip install -e ".[lang]"' in result.output


def test_enrich_leaves_a_row_in_the_audit_table_even_when_interrupted(tmp_path, lake):
    """Each run that wrote rows appends one audit row (posts looked at, its statistics): an
    interrupted run too, for the batches it committed; a run with nothing to do, none."""
    replay([REAL / "mastodonsocial.json"], lake)

    def interrupt(stats: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enrich(lake, batch_posts=10, on_batch=interrupt, low_accuracy=True)
    rest = enrich(lake, low_accuracy=True)
    assert enrich(lake, low_accuracy=True).examined == 0
    con = open_lake(lake)
    try:
        rows = con.execute(
            "SELECT command, posts, stats_json FROM audit ORDER BY started_at"
        ).fetchall()
        (detected,) = con.execute("SELECT count(*) FROM languages").fetchone()
    finally:
        con.close()
    assert [(command, posts) for command, posts, _ in rows] == [
        ("replay", rows[0][1]),
        ("enrich", 10),
        ("enrich", rest.examined),
    ]
    assert 10 + rest.examined == detected
    recorded = json.loads(rows[2][2])
    assert recorded["detected"] == rest.detected and recorded["detector"] == rest.detector
