"""One post seen on several instances is written once; each sighting is recorded."""

from __future__ import annotations

import copy
from pathlib import Path

from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import Recorder, RunStats, run
from tootlake.record import Delete, Post, Sighting, validate_status
from tootlake.sources import DELETE, EDIT, UPDATE, Event

from ..conftest import real_status


def _copy(status, observed_on, local_id, **changes):
    out = copy.deepcopy(status)
    out.update(id=local_id, **changes)
    kind = UPDATE if "edited_at" not in changes else EDIT
    return Event(kind, observed_on, status=validate_status(out))


def test_same_uri_on_three_instances_is_one_post_and_three_sightings(lake):
    status = real_status("mastodonsocial.json", 1)
    events = [
        _copy(status, "a.example", "100"),
        _copy(status, "b.example", "200"),
        _copy(status, "a.example", "100"),  # the backfill's copy of what the stream sent
        _copy(status, "c.example", "300"),
        _copy(
            status,
            "b.example",
            "200",
            edited_at="2022-11-21T13:20:00.000Z",
            content="<p>edited</p>",
        ),
        _copy(
            status,
            "a.example",
            "100",
            edited_at="2022-11-21T13:20:00.123Z",
            content="<p>edited</p>",
        ),  # the same edit, with milliseconds
        Event(DELETE, "c.example", id="300"),
    ]
    stats = RunStats()
    recorder = Recorder(stats, include_opted_out=True, dedupe=True)
    records = [recorder.record(e) for e in events]
    assert [type(r).__name__ if r else None for r in records] == [
        "Post",
        "Sighting",
        None,
        "Sighting",
        "Post",
        None,
        "Delete",
    ]
    assert (stats.posts, stats.sightings, stats.duplicates, stats.edits) == (1, 2, 2, 1)
    assert records[-1].uri == status["uri"]  # the delete of c's id names the uri

    run(
        iter(events[:-1]),
        LakeWriter(lake, sightings=True),
        recorder=Recorder(RunStats(), include_opted_out=True, dedupe=True),
    )
    con = open_lake(lake)
    assert con.execute("SELECT count(*) FROM posts_all").fetchone()[0] == 2  # post + its edit
    assert con.execute("SELECT text FROM posts").fetchone()[0] == "edited"
    assert sorted(con.execute("SELECT observed_on, id FROM sightings").fetchall()) == [
        ("a.example", "100"),
        ("b.example", "200"),
        ("c.example", "300"),
    ]


def test_delete_of_an_instance_that_only_sighted_the_post_applies(lake):
    from datetime import UTC, datetime

    status = real_status("mastodonsocial.json", 2)
    sink = LakeWriter(lake, sightings=True)
    now = datetime.now(UTC)
    recorder = Recorder(RunStats(), include_opted_out=True)
    post = recorder.record(_copy(status, "a.example", "1"))
    assert isinstance(post, Post)
    sink.add([post, Sighting(post.uri, "b.example", "2", now)])
    sink.flush()
    assert open_lake(lake).execute("SELECT count(*) FROM posts").fetchone()[0] == 1
    sink.add([Delete("b.example", "2", None, now)])  # uri unknown: resolved by the lake
    sink.flush()
    con = open_lake(lake)
    assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 0


def test_empty_lake_has_a_sightings_view(lake):
    Path(lake).mkdir()
    assert open_lake(lake).execute("SELECT count(*) FROM sightings").fetchone()[0] == 0


def test_written_uris_memory_is_bounded():
    status = real_status("mastodonsocial.json", 3)
    recorder = Recorder(
        RunStats(), include_opted_out=True, dedupe=True, remember=50, remember_uris=100
    )
    for n in range(1000):
        recorder.record(_copy(status, "a.example", str(n), uri=f"https://x.example/{n}"))
    assert len(recorder._written) + len(recorder._written_old) <= 100
    assert len(recorder._uris) <= 50


def test_a_noindex_seen_on_the_home_copy_withdraws_the_post_and_skips_later_copies(lake):
    """Mastodon serves `noindex` on the author's home instance only: a copy from elsewhere is
    written, then withdrawn (a Delete naming the uri, reason noindex) when the home copy says
    it; copies after that, from anywhere, are skipped; the lake ends without the post."""
    status = real_status("mastodonsocial.json", 1)  # local to mastodon.social
    account = status["account"]
    remote = dict(account, acct=f"{account['acct']}@mastodon.social")
    remote.pop("noindex", None)
    home = dict(account, noindex=True)
    events = [
        _copy(status, "b.example", "200", account=remote),
        _copy(status, "mastodon.social", "100", account=home),
        _copy(status, "c.example", "300", account=remote),
    ]
    stats = RunStats()
    recorder = Recorder(stats, dedupe=True)
    records = [recorder.record(e) for e in events]
    assert isinstance(records[0], Post) and records[0].consent != "none"
    withdrawn = records[1]
    assert isinstance(withdrawn, Delete)
    assert (withdrawn.uri, withdrawn.reason) == (status["uri"], "noindex")
    assert records[2] is None
    assert stats.skipped == {"noindex": 2} and stats.withdrawn == {"noindex": 1}
    # another post of the same author, seen only elsewhere: skipped, the account is known
    other = _copy(dict(status, uri=status["uri"] + "9"), "c.example", "301", account=remote)
    assert recorder.record(other) is None and stats.skipped["noindex"] == 3
    writer = LakeWriter(lake)
    writer.add([r for r in records if r is not None])
    writer.flush()
    con = open_lake(lake)
    assert con.execute("SELECT count(*) FROM posts").fetchone() == (0,)
    assert con.execute("SELECT reason FROM deletes").fetchall() == [("noindex",)]


def test_an_author_who_opts_out_later_has_the_written_post_withdrawn():
    """An edit (or a later copy) whose author now carries an opt-out tag: the version
    written before goes, with the gate as the reason; nothing is withdrawn twice."""
    status = real_status("mastodonsocial.json", 1)
    tagged = dict(status["account"], note="<p>no more: #nobot</p>")
    events = [
        _copy(status, "mastodon.social", "100"),
        _copy(status, "mastodon.social", "100", account=tagged, edited_at="2022-11-21T13:20:00Z"),
        _copy(status, "b.example", "200", account=tagged),
    ]
    stats = RunStats()
    recorder = Recorder(stats)  # a replay: no dedupe, the same withdrawal
    records = [recorder.record(e) for e in events]
    assert isinstance(records[0], Post)
    assert isinstance(records[1], Delete) and records[1].reason == "opt_out_tag"
    assert records[2] is None
    assert stats.withdrawn == {"opt_out_tag": 1} and stats.skipped == {"opt_out_tag": 2}
    assert stats.consent == {records[0].consent: 1} and stats.posts == 1
