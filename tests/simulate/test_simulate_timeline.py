"""The REST public timeline pages, links, throttles and gates as Mastodon does
(docs/mastodon-api.md sections 1.6 and 2)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from tootlake.simulate import Fediverse, InstanceSettings

from .conftest import bearer, plain_draft

TOKEN = "secret-token"
TIMELINE = "/api/v1/timelines/public"


async def _fill(fed: Fediverse, local: int = 30, remote: int = 0) -> list[int]:
    """Public statuses on instance 0, oldest first; their ids there."""
    posts = [fed.post(plain_draft(fed, 0), targets=[]) for _ in range(local)]
    posts += [fed.post(plain_draft(fed, 1), targets=[0]) for _ in range(remote)]
    return sorted(p.copies[0] for p in posts)


async def _get(
    http: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    async with http.get(url, **kwargs) as response:
        body = await response.read()
        try:
            parsed: Any = await response.json(content_type=None)
        except ValueError:
            parsed = body
        return response.status, dict(response.headers), parsed


async def test_pages_are_newest_first_with_links_like_the_recorded_ones():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        ids = await _fill(fed, 30)
        url = fed.urls[0] + TIMELINE
        status, headers, page = await _get(
            http, url + "?local=FALSE&remote=FALSE&only_media=FALSE&limit=20"
        )
    assert status == 200
    assert [int(s["id"]) for s in page] == ids[::-1][:20]
    newest, oldest = page[0]["id"], page[-1]["id"]
    base = f"{fed.urls[0]}{TIMELINE}?limit=20&local=FALSE"
    assert headers["Link"] == (
        f'<{base}&max_id={oldest}&only_media=FALSE&remote=FALSE>; rel="next", '
        f'<{base}&min_id={newest}&only_media=FALSE&remote=FALSE>; rel="prev"'
    )
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Cache-Control"].startswith("max-age=15, public")  # anonymous


async def test_limit_defaults_to_20_and_stops_at_40():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        await _fill(fed, 45)
        url = fed.urls[0] + TIMELINE
        sizes = [
            len((await _get(http, url + query))[2])
            for query in ("", "?limit=5", "?limit=100", "?limit=-7")
        ]
    assert sizes == [20, 5, 40, 7]


async def test_min_max_and_since_id_select_like_to_a_paginated_by_id():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        ids = await _fill(fed, 30)
        url = fed.urls[0] + TIMELINE

        async def page(query: str) -> list[int]:
            return [int(s["id"]) for s in (await _get(http, url + query))[2]]

        # min_id: the page just above the cursor, still newest first.
        assert await page(f"?min_id={ids[10]}&limit=5") == ids[11:16][::-1]
        # since_id: the newest page above the cursor (a gap below it).
        assert await page(f"?since_id={ids[10]}&limit=5") == ids[25:30][::-1]
        assert await page(f"?max_id={ids[10]}&limit=5") == ids[5:10][::-1]
        assert await page(f"?min_id={ids[10]}&max_id={ids[13]}") == ids[11:13][::-1]
        _, headers, empty = await _get(http, url + f"?min_id={ids[-1]}")
        assert empty == [] and "Link" not in headers


async def test_following_prev_links_backfills_without_gaps():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        ids = await _fill(fed, 50, remote=25)
        cursor = ids[7]
        url: str | None = fed.urls[0] + TIMELINE + f"?min_id={cursor}&limit=10"
        seen: list[int] = []
        while url:
            _, headers, page = await _get(http, url)
            if not page:
                break
            seen += [int(s["id"]) for s in page]
            url = re.search(r'<([^>]+)>; rel="prev"', headers["Link"]).group(1)  # type: ignore[union-attr]
    assert sorted(seen) == ids[8:] and len(seen) == len(set(seen))


async def test_local_remote_and_only_media_filters():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        media: tuple[dict[str, Any], ...] = (
            {"type": "image", "meta": {}, "description": None, "blurhash": None},
        )
        mine = fed.post(plain_draft(fed, 0), targets=[])
        theirs = fed.post(plain_draft(fed, 1), targets=[0])
        pictured = fed.post(plain_draft(fed, 1, media=media), targets=[0])
        url = fed.urls[0] + TIMELINE

        async def uris(query: str) -> list[str]:
            return [s["uri"] for s in (await _get(http, url + query))[2]]

        assert await uris("?local=true") == [mine.uri]
        assert await uris("?remote=1") == [pictured.uri, theirs.uri]
        assert await uris("?local=true&remote=true") == [pictured.uri, theirs.uri, mine.uri]
        assert await uris("?only_media=true") == [pictured.uri]
        assert await uris("?local=0") == [pictured.uri, theirs.uri, mine.uri]


async def test_rate_limit_headers_and_429():
    settings = InstanceSettings(rate_limit=(3, 300.0))
    async with Fediverse(1, settings=settings) as fed, aiohttp.ClientSession() as http:
        url = fed.urls[0] + TIMELINE
        answers = [await _get(http, url) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert [h["X-RateLimit-Remaining"] for _, h, _ in answers] == ["2", "1", "0", "0"]
    assert all(h["X-RateLimit-Limit"] == "3" for _, h, _ in answers)
    reset = answers[0][1]["X-RateLimit-Reset"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", reset)
    status, headers, body = answers[3]
    assert body == {"error": "Too many requests"}
    assert 1 <= int(headers["Retry-After"]) <= 300


async def test_paging_requests_have_their_own_budget():
    settings = InstanceSettings(rate_limit=(100, 300.0), paging_rate_limit=(2, 900.0))
    async with Fediverse(1, settings=settings) as fed, aiohttp.ClientSession() as http:
        url = fed.urls[0] + TIMELINE
        statuses = [(await _get(http, url + "?min_id=1"))[0] for _ in range(3)]
        statuses.append((await _get(http, url))[0])
    assert statuses == [200, 200, 429, 200]


async def test_anonymous_reads_need_a_user_when_feeds_are_not_public():
    settings = InstanceSettings(
        token=TOKEN, live_feeds={"local": "authenticated", "remote": "public"}
    )
    async with Fediverse(2, settings=settings) as fed, aiohttp.ClientSession() as http:
        await _fill(fed, 3)
        url = fed.urls[0] + TIMELINE
        status, _, body = await _get(http, url)
        assert (status, body) == (422, {"error": "This method requires an authenticated user"})
        assert (await _get(http, url + "?local=true"))[0] == 422
        assert (await _get(http, url + "?remote=true"))[0] == 200  # the remote half is public
        status, headers, page = await _get(http, url, headers=bearer(TOKEN))
        assert status == 200 and headers["Cache-Control"] == "private, no-store"
        assert list(page[0])[14:18] == ["favourited", "reblogged", "muted", "bookmarked"]
        assert page[0]["filtered"] == []
        status, _, body = await _get(http, url, headers=bearer("wrong"))
        assert (status, body) == (401, {"error": "The access token is invalid"})


async def test_disabled_feeds_give_empty_pages_or_the_allowed_half():
    settings = InstanceSettings(
        token=TOKEN, live_feeds={"local": "disabled", "remote": "authenticated"}
    )
    async with Fediverse(2, settings=settings) as fed, aiohttp.ClientSession() as http:
        ids = await _fill(fed, 3, remote=2)
        url = fed.urls[0] + TIMELINE
        assert (await _get(http, url + "?local=true", headers=bearer(TOKEN)))[2] == []
        both = (await _get(http, url, headers=bearer(TOKEN)))[2]
        assert [int(s["id"]) for s in both] == ids[3:][::-1]  # only the remote half
        fed.instances[0].settings.live_feeds["remote"] = "disabled"
        assert (await _get(http, url, headers=bearer(TOKEN)))[2] == []


async def test_edits_and_deletes_show_in_the_timeline():
    async with Fediverse(2) as fed, aiohttp.ClientSession() as http:
        kept = fed.post(plain_draft(fed, 1), targets=[0])
        gone = fed.post(plain_draft(fed, 1), targets=[0])
        fed.edit(kept)
        fed.delete(gone)
        page = (await _get(http, fed.urls[0] + TIMELINE))[2]
    assert [s["uri"] for s in page] == [kept.uri]
    assert page[0]["edited_at"] == kept.edited_s  # a remote copy: second precision
    assert page[0]["content"].endswith("</p>") and "Edit: " in page[0]["content"]


async def test_rest_json_escapes_html_like_rails():
    async with Fediverse(1) as fed, aiohttp.ClientSession() as http:
        fed.post(plain_draft(fed, 0), targets=[])
        async with http.get(fed.urls[0] + TIMELINE) as response:
            raw = await response.read()
    assert b"\\u003cp\\u003e" in raw and b"<p>" not in raw


async def test_slow_answers_are_slow():
    async with Fediverse(1) as fed, aiohttp.ClientSession() as http:
        fed.instances[0].slow(0.3, path=TIMELINE)
        started = time.monotonic()
        await asyncio.gather(_get(http, fed.urls[0] + TIMELINE), _get(http, fed.urls[0] + TIMELINE))
        assert 0.3 <= time.monotonic() - started < 2
        started = time.monotonic()
        await _get(http, fed.urls[0] + "/api/v1/instance")
        assert time.monotonic() - started < 0.3
