"""`GET /api/v1/statuses/:id` and `GET /api/v1/accounts/:id` as Mastodon answers them, for
what the simulated fediverse changed after the fact: deletes, deleted and suspended accounts,
posts made non-public (docs/mastodon-api.md section 7, "Single status")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp

from tootlake.simulate import Fediverse, InstanceSettings

from .conftest import bearer, plain_draft

TOKEN = "secret-token"


async def _get(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
    async with http.get(url, **kwargs) as response:
        return response.status, response.headers, await response.json(content_type=None)


def _acct(post: Any) -> str:
    return f"{post.draft.author.username}@{post.draft.author.home}"


async def test_a_status_is_served_as_each_instance_has_it_until_it_is_deleted():
    async with Fediverse(instances=2, seed=3) as fed, aiohttp.ClientSession() as http:
        post = fed.post(plain_draft(fed, 0), targets=[1])
        for index, inst in enumerate(fed.instances):
            local_id = post.copies[index]
            status, headers, body = await _get(http, f"{inst.url}/api/v1/statuses/{local_id}")
            assert status == 200 and body["id"] == str(local_id) and body["uri"] == post.uri
            assert int(headers["X-RateLimit-Remaining"]) < int(headers["X-RateLimit-Limit"])
        # an id the other instance gave is not this instance's
        status, _, body = await _get(http, f"{fed.urls[0]}/api/v1/statuses/{post.copies[1]}")
        assert (status, body) == (404, {"error": "Record not found"})
        fed.delete(post)
        for index, inst in enumerate(fed.instances):
            status, _, _ = await _get(http, f"{inst.url}/api/v1/statuses/{post.copies[index]}")
            assert status == 404
        status, _, _ = await _get(http, f"{fed.urls[0]}/api/v1/statuses/not-an-id")
        assert status == 404


async def test_restricted_posts_show_unlisted_or_are_not_found_and_leave_the_timeline():
    async with Fediverse(instances=1, seed=3) as fed, aiohttp.ClientSession() as http:
        unlisted, private = (fed.post(plain_draft(fed, 0), targets=[]) for _ in range(2))
        fed.restrict(unlisted, "unlisted")
        fed.restrict(private, "private")
        url = fed.urls[0]
        status, _, body = await _get(http, f"{url}/api/v1/statuses/{unlisted.copies[0]}")
        assert status == 200 and body["visibility"] == "unlisted"
        status, _, _ = await _get(http, f"{url}/api/v1/statuses/{private.copies[0]}")
        assert status == 404
        _, _, page = await _get(http, f"{url}/api/v1/timelines/public")
        assert page == []
        truth = fed.truth()
        assert truth.restricted == {unlisted.uri, private.uri} and not truth.uris
        assert truth.hidden == 0  # public once: not among what feeds never showed


async def test_deleted_and_suspended_accounts_answer_as_mastodon_does():
    async with Fediverse(instances=2, seed=3) as fed, aiohttp.ClientSession() as http:
        authors = [a for a in fed.workload.authors(0, fed.hosts[0]) if not a.opted_out][:2]
        gone, suspended = (
            [fed.post(replace(plain_draft(fed, 0), author=author), targets=[1])]
            for author in authors
        )
        gone_acct, suspended_acct = _acct(gone[0]), _acct(suspended[0])
        assert fed.remove_account(gone_acct) == gone
        assert fed.remove_account(suspended_acct, suspend=True) == suspended
        renderer = fed.renderer
        for index, inst in enumerate(fed.instances):
            account_id = renderer.account_id(authors[0], index)
            status, _, _ = await _get(http, f"{inst.url}/api/v1/accounts/{account_id}")
            assert status == 404
            account_id = renderer.account_id(authors[1], index)
            status, _, body = await _get(http, f"{inst.url}/api/v1/accounts/{account_id}")
            assert status == 200 and body["suspended"] is True and body["note"] == ""
            for post in (*gone, *suspended):
                url = f"{inst.url}/api/v1/statuses/{post.copies[index]}"
                assert (await _get(http, url))[0] == 404
        truth = fed.truth()
        assert truth.gone_accounts == {gone_acct: "deleted", suspended_acct: "suspended"}
        assert {gone[0].uri, suspended[0].uri} <= truth.deleted


async def test_lookups_need_a_token_where_the_instance_says_so():
    settings = InstanceSettings(token=TOKEN, lookups_need_token=True)
    fediverse = Fediverse(instances=1, seed=3, settings=settings)
    async with fediverse as fed, aiohttp.ClientSession() as http:
        post = fed.post(plain_draft(fed, 0), targets=[])
        url = f"{fed.urls[0]}/api/v1/statuses/{post.copies[0]}"
        status, _, body = await _get(http, url)
        assert (status, body) == (401, {"error": "This method requires an authenticated user"})
        assert (await _get(http, url, headers=bearer("wrong")))[0] == 401
        status, _, body = await _get(http, url, headers=bearer(TOKEN))
        assert status == 200 and body["favourited"] is False  # a user's view
