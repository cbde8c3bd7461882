import contextlib
from datetime import UTC, datetime

import msgspec
import pytest

from tootlake._native import python_only
from tootlake.errors import BadStatus
from tootlake.record import (
    Post,
    arrow_schema,
    avro_schema,
    from_status,
    skip_reason,
)

from .conftest import all_real_statuses, real_status

TALK_COLUMNS = [
    "uri", "id", "observed_on", "origin", "url", "created_at", "edited_at", "ingested_at",
    "language", "app", "acct", "username", "display_name", "bot", "text", "characters", "words",
    "tags", "mentions_count", "media_count", "favourites_count", "reblogs_count",
    "replies_count", "sensitive", "spoiler_text", "visibility", "in_reply_to_id",
]  # fmt: skip
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_every_real_status_parses():
    count = 0
    for where, host, status in all_real_statuses():
        post = from_status(status, host, NOW)
        assert post.uri == status["uri"], where
        assert post.characters == len(post.text), where
        assert "@" in post.acct, where
        count += 1
    assert count > 500


def test_schemas_are_derived_from_the_one_field_list():
    names = [f.name for f in msgspec.structs.fields(Post)]
    assert names[: len(TALK_COLUMNS)] == TALK_COLUMNS
    assert arrow_schema().names == names
    assert [f["name"] for f in avro_schema()["fields"]] == names
    # every nullable field can be added later: Avro gives it a null default
    for field in avro_schema()["fields"]:
        if isinstance(field["type"], list):
            assert field["default"] is None


def test_local_post_with_app():
    post = from_status(real_status("mastodonsocial.json", 1), "mastodon.social", NOW)
    assert post.uri == "https://mastodon.social/users/linfavourite/statuses/109381959558229264"
    assert post.id == "109381959558229264"
    assert post.observed_on == "mastodon.social"
    assert post.origin == "mastodon.social"
    assert post.local is True
    assert post.app == "Mastodon Twitter Crossposter"
    assert post.acct == "linfavourite@mastodon.social"
    assert post.username == "linfavourite"
    assert post.display_name == "linfaovurite"
    assert post.created_at == datetime(2022, 11, 21, 13, 10, 48, 151000, tzinfo=UTC)
    assert post.ingested_at == NOW
    assert post.language == "en"
    assert post.tags == ["比較爽啊lol"]
    assert post.text == (
        "其實廢台派要指教馬來西亞政治可以考慮用馬來文或英文。\n\n"
        "馬華人只佔馬來西亞20%人口，要指教可以指教最多的馬來人。\n\n#比較爽啊lol"
    )
    assert post.characters == 67


def test_remote_bot_post_with_links_line_breaks_hashtag_and_mention():
    post = from_status(real_status("mastodonsocial.json", 7), "mastodon.social", NOW)
    assert post.uri == "https://mastodon.cloud/users/covid_stats/statuses/109381958882206714"
    assert post.id == "109381959472366468"  # mastodon.social's own id, not the origin's
    assert post.origin == "mastodon.cloud"
    assert post.local is False
    assert post.app is None  # apps do not federate
    assert post.acct == "covid_stats@mastodon.cloud"
    assert post.bot is True
    assert post.created_at == datetime(2022, 11, 21, 13, 10, 37, tzinfo=UTC)
    assert post.text == (
        "Italy 🇮🇹 COVID-19 current stats for Mon Nov 21 2022\n\n"
        "Cases: 24,031,538\nDeaths: 180,518\nRecovered: 23,398,125\nActive: 452,895\n"
        "Tests: 255,780,377\nDoses: 142,494,404\n\n"
        "#covid_it\nhttps://covid.yanoagenda.com/countries/IT\n\n@Digori"
    )
    assert post.characters == 224
    assert post.words == 25
    assert post.tags == ["covid_it"]
    assert post.mentions_count == 1
    assert post.media_count == 1


def test_local_bot_with_app_website_and_mixed_case_tag():
    post = from_status(real_status("mastodonsocial.json", 42), "mastodon.social", NOW)
    assert post.bot is True
    assert post.app == "Flame Reactor"
    assert post.app_website == "https://flamereactor.com/"
    assert post.tags == ["fractalflame"]
    assert post.text.endswith("for future breedings.\n#fractalFlame")
    assert post.words == 39


def test_edit_is_a_new_version_of_the_same_uri():
    original = from_status(real_status("malformed.json", 5), "fosstodon.org", NOW)
    edited = from_status(real_status("malformed.json", 37), "fosstodon.org", NOW)
    assert (
        original.uri
        == edited.uri
        == ("https://fosstodon.org/users/hansfbaier/statuses/109401122626876204")
    )
    assert original.edited_at is None
    assert edited.edited_at == datetime(2022, 11, 24, 22, 24, 37, 237000, tzinfo=UTC)
    assert "Kojima @1gkojima 1gkojima for" in original.text
    assert "Kojima @1gkojima @1gkojima for" in edited.text
    assert (original.characters, edited.characters) == (245, 246)
    assert edited.in_reply_to_id == "109401101862799648"  # a self-reply (thread)


def test_remote_post_with_many_hashtags_and_second_precision_time():
    post = from_status(real_status("malformed.json", 17), "fosstodon.org", NOW)
    assert post.origin == "mastodon.sdf.org"
    assert post.acct == "wasootch@mastodon.sdf.org"
    assert post.tags == ["alberta", "ostrich", "funfact", "fast", "ostriches"]
    assert post.created_at == datetime(2022, 11, 24, 22, 24, 20, tzinfo=UTC)
    assert post.characters == 474


def test_opted_out_accounts_are_skipped_unless_asked():
    status = real_status("malformed.json", 5)  # account has noindex: true
    assert skip_reason(status) == "noindex"
    assert skip_reason(status, include_opted_out=True) is None
    bio = real_status("mastodonsocial.json", 3)
    bio["account"] = {**bio["account"], "note": "<p>Please: #<span>NoSearch</span></p>"}
    assert skip_reason(bio) == "opt_out_tag"
    field = {"name": "Bots", "value": '<a class="mention hashtag">#<span>NoArchive</span></a>'}
    fields = real_status("mastodonsocial.json", 3)
    fields["account"] = {**fields["account"], "fields": [{"name": "x", "value": "y"}, field]}
    assert skip_reason(fields) == "opt_out_tag"
    assert from_status(fields, "mastodon.social").consent == "none"


@pytest.mark.parametrize(
    "value", ["&num;nobot", "&#35;noindex", "\uff03\uff4e\uff4f\uff42\uff4f\uff54"]
)
def test_a_profile_field_is_read_as_a_bio_is(value):
    """A field was read only when it held a literal `#`: these tags, which a bio opts out
    with, did not opt out from a field (found by the native to_post's property tests)."""
    status = real_status("mastodonsocial.json", 3)
    status["account"] = {**status["account"], "fields": [{"name": "Bots", "value": value}]}
    assert skip_reason(status) == "opt_out_tag"
    for native in (True, False):
        with contextlib.nullcontext() if native else python_only():
            assert from_status(status, "mastodon.social").opted_out is True


def test_reblogs_and_non_public_posts_are_skipped():
    status = real_status("mastodonsocial.json", 3)
    assert skip_reason(status) is None
    assert skip_reason({**status, "reblog": dict(status)}) == "reblog"
    assert skip_reason({**status, "visibility": "unlisted"}) == "not_public"


@pytest.mark.parametrize("missing", ["uri", "id", "created_at", "account"])
def test_status_without_required_field_is_a_bad_status(missing):
    status = real_status("mastodonsocial.json", 3)
    del status[missing]
    with pytest.raises(BadStatus):
        from_status(status, "mastodon.social")


def test_bad_timestamp_is_a_bad_status():
    status = real_status("mastodonsocial.json", 3)
    status["created_at"] = "yesterday"
    with pytest.raises(BadStatus, match="created_at is not a time"):
        from_status(status, "mastodon.social")
