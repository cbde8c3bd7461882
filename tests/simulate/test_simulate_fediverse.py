"""Federation, the ground truth and the workload of the simulated fediverse."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import replace

import aiohttp

from tootlake.record import from_status, skip_reason
from tootlake.simulate import Fediverse, FediverseThread, InstanceSettings, Workload, generate
from tootlake.simulate.workload import Draft, real_statuses

from .conftest import plain_draft


async def test_federation_gives_each_instance_its_own_id_and_the_same_uri():
    async with Fediverse(3) as fed:
        post = fed.post(plain_draft(fed, 0), targets=[1, 2])
        copies = {
            i: json.loads(fed.renderer.render(post, fed.instances[i].observer, post.copies[i]))
            for i in range(3)
        }
    origin = fed.hosts[0]
    assert len({c["id"] for c in copies.values()}) == 3  # an id of its own on each instance
    assert {c["uri"] for c in copies.values()} == {post.uri}
    username = copies[0]["account"]["username"]
    assert post.uri == f"http://{origin}/users/{username}/statuses/{copies[0]['id']}"  # origin's id
    local, remote = copies[0], copies[1]
    assert (
        local["account"]["acct"] == username
        and local["account"]["url"] == f"http://{origin}/@{username}"
    )
    assert "application" in local and "noindex" in local["account"] and "roles" in local["account"]
    assert re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}Z", local["created_at"])
    assert remote["account"]["acct"] == f"{username}@{origin}"
    assert "application" not in remote and "noindex" not in remote["account"]
    assert (
        remote["created_at"].endswith(".000Z")
        and remote["created_at"][:19] == local["created_at"][:19]
    )
    assert local["account"]["id"] != remote["account"]["id"]
    # What the collector makes of them: one uri, origin and observed_on from the hosts.
    posts = [from_status(copies[i], fed.hosts[i]) for i in range(3)]
    assert {p.origin for p in posts} == {origin} and [p.local for p in posts] == [
        True,
        False,
        False,
    ]
    assert {p.acct for p in posts} == {f"{username}@{origin}"}


async def test_copies_are_delivered_with_their_local_ids():
    async with Fediverse(3, seed=4) as fed:
        posts = await fed.publish(200)
        assert all(
            fed.copies(p) == {fed.hosts[i]: str(n) for i, n in p.copies.items()} for p in posts
        )
        for i in range(3):  # ids strictly increase in arrival order, on every instance
            ids = [p.copies[i] for p in posts if i in p.copies]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
        virtual = [p for p in posts if p.origin_index is None]
        assert virtual and all(p.copies for p in virtual)
        # Virtual origins' uris come in their software's shapes, not only Mastodon's.
        assert any(re.search(r"https://[^/]+/users/[^/]+/statuses/\d+$", p.uri) for p in virtual)
        assert any(re.search(r"https://[^/]+/notes/[0-9a-z]+$", p.uri) for p in virtual)


async def test_truth_follows_edits_deletes_and_opt_outs():
    async with Fediverse(3, seed=7) as fed:
        posts = await fed.publish(300)
        public = [p for p in posts if p.streamable and not p.opted_out]
        edited, deleted = public[:5], public[5:8]
        for post in edited:
            fed.edit(post)
        fed.edit(edited[0])  # twice: the latest version counts
        for post in deleted:
            fed.delete(post)
        quitter = plain_draft(fed, 1)
        noindex = replace(quitter, author=replace(quitter.author, noindex=True))
        opted = fed.post(noindex, targets=[1, 0])
        truth = fed.truth()
        home_only = fed.truth([fed.hosts[1]])
        # noindex is served on the author's home instance only: a copy elsewhere cannot tell
        elsewhere = fed.truth([fed.hosts[0]])
    assert truth.published == 301
    assert truth.hidden == sum(not p.streamable for p in posts)
    assert {p.uri for p in deleted} <= truth.deleted and not truth.deleted & truth.uris
    assert all(truth.latest[p.uri] == p.edited_at is not None for p in edited)
    # the home copy says noindex: the post goes, whatever a remote copy says
    assert opted.uri in truth.opted_out and opted.uri not in truth.uris
    assert opted.uri in home_only.opted_out and opted.uri in elsewhere.uris
    passes = [  # no opt-out tag, and noindex not on a copy from its home instance
        p
        for p in posts
        if p.streamable
        and not p.author.opt_out_tag
        and not (p.author.noindex and p.origin_index in p.copies)
    ]
    assert truth.uris == {p.uri for p in passes} - truth.deleted
    everything = fed.truth(include_opted_out=True)
    assert everything.uris == truth.uris | truth.opted_out
    assert json.loads(json.dumps(truth.to_json()))["published"] == 301


async def test_truth_knows_which_instances_could_show_a_post():
    settings = [
        InstanceSettings(),
        InstanceSettings(live_feeds={"local": "public", "remote": "disabled"}),
        InstanceSettings(),
    ]
    async with Fediverse(3, settings=settings) as fed:
        on_1_remote = fed.post(plain_draft(fed, 0), targets=[1])  # local on 0, remote on 1
        on_2 = fed.post(plain_draft(fed, 2), targets=[])
        assert fed.truth([fed.hosts[1]]).uris == set()  # its remote feed is disabled
        assert fed.truth([fed.hosts[0], fed.hosts[1]]).uris == {on_1_remote.uri}
        assert fed.truth().uris == {on_1_remote.uri, on_2.uri}


async def test_publishing_at_a_rate_and_in_the_background():
    async with Fediverse(2, seed=1) as fed:
        started = time.monotonic()
        posts = await fed.publish(60, rate=200)
        assert len(posts) == 60 and 0.2 < time.monotonic() - started < 2
        started = time.monotonic()
        fed.start_publishing(500, edits=0.1, deletes=0.05)
        await asyncio.sleep(0.3)
        await fed.stop_publishing()
        # 500/s for as long as it ran (a loaded machine's sleep runs over)
        ran = time.monotonic() - started
        assert 60 + 50 < fed.published < 60 + 500 * ran + 50, (fed.published, ran)
        truth = fed.truth()
        assert truth.deleted and any(edited for edited in truth.latest.values())


async def test_retention_drops_old_content_but_keeps_the_truth():
    async with Fediverse(1, retention=10) as fed, aiohttp.ClientSession() as http:
        posts = [fed.post(plain_draft(fed, 0), targets=[]) for _ in range(30)]
        async with http.get(fed.urls[0] + "/api/v1/timelines/public?limit=40") as response:
            page = await response.json()
        assert [s["uri"] for s in page] == [p.uri for p in posts[-10:]][::-1]
        assert fed.truth().uris == {p.uri for p in posts}


def test_the_threaded_fediverse_serves_synchronous_code():
    with FediverseThread(2, seed=2) as sim:
        posts = sim.call(sim.fed.publish, 20)
        assert len(posts) == 20 and len(sim.fed.urls) == 2
        assert sim.call(sim.fed.truth).published == 20


def test_the_workload_is_a_function_of_the_seed_not_the_ports():
    a = generate(300, hosts=["127.0.0.1:1000", "127.0.0.1:1001"], seed=5)
    b = generate(300, hosts=["127.0.0.1:2000", "127.0.0.1:2001"], seed=5)
    c = generate(300, hosts=["127.0.0.1:1000", "127.0.0.1:1001"], seed=6)

    def key(d: Draft) -> tuple[object, ...]:
        return (
            d.author.username,
            d.author.home_index,
            d.language,
            d.tags,
            d.visibility,
            len(d.content),
        )

    assert [key(d) for d in a] == [key(d) for d in b]
    assert [key(d) for d in a] != [key(d) for d in c]


def test_each_username_is_taken_once_per_server():
    """As on Mastodon: two simulated accounts under one name were one account to a
    collector (one's `noindex` hid the other's posts), not to the ground truth."""
    workload = Workload(["127.0.0.1:1000"], seed=1)
    repeated = 0
    for index in range(60):
        for software in ("mastodon", "bridgy"):
            authors = workload.authors(index, f"127.0.0.1:{2000 + index}", software)
            names = [a.username.lower() for a in authors]
            assert len(names) == len(set(names)), Counter(names).most_common(2)
            repeated += sum(a.username[-2:-1] == "_" for a in authors if "." not in a.username)
    assert repeated > 0  # the seeds drew repeated names, so the renaming was exercised


def test_the_workload_looks_like_public_timelines():
    drafts = Workload([f"127.0.0.1:{p}" for p in range(9000, 9010)], seed=3).drafts(5000)
    languages = Counter(d.language for d in drafts)
    assert languages.most_common(1)[0][0] == "en" and len(languages) >= 12
    assert 0.005 < languages[None] / len(drafts) < 0.08
    origins = Counter(d.author.home for d in drafts)
    assert origins["mastodon.social"] > origins["misskey.io"] > 0 and origins["127.0.0.1:9000"] > 0
    apps = Counter(d.application[0] if d.application else None for d in drafts)
    assert {"Web", "Ivory for iOS", "Tusky", "Mastodon for Android"} <= set(apps) and apps[None] > 0
    assert any(d.author.bot for d in drafts)
    assert {d.visibility for d in drafts} == {"public", "unlisted", "private", "direct"}
    assert any(d.reblog for d in drafts) and any(d.reply == "self" for d in drafts)
    assert any(d.author.noindex for d in drafts) and any(
        "nobot" in d.author.note.lower() for d in drafts
    )
    authors = {d.author for d in drafts}
    # opt-out tags of each kind, in bios and in profile fields; the account flags of consent
    notes = " ".join(a.note for a in authors)
    assert all(f"<span>{tag}</span>" in notes for tag in ("noindex", "NoBots", "nosearch"))
    fields = [value for a in authors for _, value in a.fields]
    assert any("NoBots" in v for v in fields) and any("noarchive" in v for v in fields)
    assert {a.opt_out_tag for a in authors} == {True, False}
    assert {(a.indexable, a.locked, a.bot) for a in authors} >= {
        (True, False, False), (False, False, False), (True, True, False), (True, False, True)
    }  # fmt: skip
    streamable = sum(d.streamable for d in drafts) / len(drafts)
    assert 0.6 < streamable < 0.85
    lengths = sorted(len(d.content) for d in drafts)
    assert lengths[len(lengths) // 2] < 400 < lengths[-1] // 4  # a long tail
    html = "".join(d.content for d in drafts)
    for piece in (
        "<p>",
        "<br>",
        'class="invisible"',
        'class="ellipsis"',
        'class="mention hashtag"',
        "h-card",
    ):
        assert piece in html


async def test_generated_statuses_are_what_a_collector_can_read():
    async with Fediverse(3, seed=9) as fed:
        posts = await fed.publish(300)
        kinds: Counter[str | None] = Counter()
        for post in posts:
            for index, local_id in post.copies.items():
                status = fed.renderer.copy(
                    post, fed.instances[index].observer, local_id, stream=True
                )
                reason = skip_reason(status)
                kinds[reason] += 1
                if reason is None:
                    record = from_status(status, fed.hosts[index])
                    assert record.uri == post.uri and record.observed_on == fed.hosts[index]
    assert (
        kinds[None] > 0
        and kinds["reblog"] > 0
        and kinds["not_public"] > 0
        and kinds["noindex"] + kinds["opt_out_tag"] > 0
    )


def test_real_texts_can_feed_the_drafts():
    real = Workload(["127.0.0.1:1"], seed=1, real_share=1.0).drafts(50)
    assert {d.content for d in real} <= {s["content"] for s in real_statuses()}
    assert any(d.media for d in real)


def test_the_public_api_is_what_all_says():
    import tootlake.simulate as simulate

    assert all(hasattr(simulate, name) for name in simulate.__all__)
    public = {n for n, v in vars(simulate).items() if not n.startswith("_") and isinstance(v, type)}
    assert public <= set(simulate.__all__)
