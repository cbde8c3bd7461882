"""Pseudonymised lakes (`--pseudonymize KEYFILE`, issue 12): the transform, its parser of
mentions and links (property tests), the lake's marker and its refusal to mix, and end to end
against the simulated fediverse over real sockets: a collected lake and a replayed capture
hold no raw identifier the simulator published, and the report's figures equal those of the
same input without pseudonymisation."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collect.conftest import Running, all_connected, fediverse, wait_for  # noqa: F401
from tootlake.analysis.datasheet import build_datasheet
from tootlake.analysis.html import render_html_report
from tootlake.analysis.report import build_report
from tootlake.cli import main
from tootlake.collector import collect
from tootlake.errors import ConfigError
from tootlake.lake.layout import AUDIT, DELETES, LANGUAGES, POSTS, POSTS_ALL, REJECTS, SIGHTINGS
from tootlake.lake.maintenance import compact
from tootlake.lake.pseudonyms import claim, lake_key_id
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay
from tootlake.pseudonym import generate_key
from tootlake.record import Delete, Post, Reject, Sighting, from_status
from tootlake.record.pseudonymize import KEPT, PSEUDONYMISED, Pseudonymizer, is_pseudonym_url
from tootlake.simulate import FediverseThread, InstanceSettings
from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.replay import cut

from .conftest import REAL, all_real_statuses

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TOKEN = "s3cr3t-TOKEN-value"
P = Pseudonymizer(KEY)


def _status(**changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": "109000000000000001",
        "uri": "https://Home.Example/users/alice/statuses/109000000000000001",
        "url": "https://home.example/@alice/109000000000000001",
        "created_at": "2025-01-02T03:04:05.000Z",
        "visibility": "public",
        "content": '<p><span class="h-card"><a href="https://far.example/@bob" '
        'class="u-url mention">@<span>bob</span></a></span> see '
        '<a href="https://home.example/@carol">https://home.example/@carol</a> and '
        "@dave@Elsewhere.Example</p>",
        "spoiler_text": "about @bob",
        "in_reply_to_id": "109000000000000000",
        "in_reply_to_account_id": "42",
        "account": {
            "id": "7",
            "username": "alice",
            "acct": "alice",
            "display_name": "Alice Liddell",
            "url": "https://home.example/@alice",
            "moved": {"acct": "alice@new.example", "url": "https://new.example/@alice"},
        },
        "mentions": [
            {
                "id": "42",
                "username": "bob",
                "acct": "bob@far.example",
                "url": "https://far.example/@bob",
            }
        ],
        "quote": {"state": "accepted", "quoted_status": {"uri": "https://q.example/s/1"}},
        "application": {"name": "Web", "website": "https://home.example/@alice"},
    }
    status.update(changes)
    return status


# -- the transform -------------------------------------------------------------------------


def test_a_post_keeps_hosts_and_counts_and_loses_every_identifier():
    raw = from_status(_status(), "home.example")
    post = P.post(raw)
    assert post.acct.endswith("@home.example") and post.acct != raw.acct
    assert post.username == post.acct.partition("@")[0] and len(post.username) == 20
    assert post.display_name == ""
    assert post.uri.startswith("https://home.example/p/") and is_pseudonym_url(post.uri)
    assert post.url is not None and is_pseudonym_url(post.url)
    assert post.id != raw.id and post.account_id != raw.account_id
    assert post.origin == raw.origin == "home.example" and post.observed_on == "home.example"
    assert (post.characters, post.words) == (raw.characters, raw.words)
    assert post.mentions == [P.acct("bob@far.example")]
    assert post.in_reply_to_acct == P.acct("bob@far.example")
    assert post.in_reply_to_id == P.status_id("home.example", "109000000000000000")
    assert post.in_reply_to_account_id == P.account_id("home.example", "42")
    assert post.moved_to == P.acct("alice@new.example")
    assert post.quote_uri == P.uri("https://q.example/s/1")
    bob = P.username("bob@far.example")
    assert post.text == (
        f"@{bob} see https://home.example/@{P.username('carol@home.example')} and "
        f"@{P.acct('dave@elsewhere.example')}"
    )
    assert post.spoiler_text == f"about @{bob}"
    # a client's site may be its author's own page: its host is kept, the rest hashed
    assert post.app == "Web" and post.app_website is not None
    assert is_pseudonym_url(post.app_website)
    assert post.app_website.startswith("https://home.example/p/")
    for word in ("alice", "bob", "carol", "dave", "Liddell", "109000000000000001"):
        assert word not in json.dumps(
            {f: getattr(post, f) for f in post.__struct_fields__}, default=str
        )


def test_every_column_of_a_post_is_either_pseudonymised_or_kept_on_purpose():
    assert PSEUDONYMISED.isdisjoint(KEPT)
    assert set(Post.__struct_fields__) == PSEUDONYMISED | KEPT, (
        "a new column of Post: decide in tootlake.record.pseudonymize whether it identifies"
    )
    raw = from_status(_status(), "home.example")
    post = P.post(raw)
    changed = {f for f in Post.__struct_fields__ if getattr(post, f) != getattr(raw, f)}
    assert changed <= PSEUDONYMISED and not (KEPT & changed)


def test_the_same_account_and_post_map_to_the_same_pseudonyms_everywhere():
    # usernames and hosts match case-insensitively, as on Mastodon: one account, one pseudonym
    assert P.acct("Bob@Far.Example") == P.acct("Bob@far.example") == P.acct("bob@far.example")
    assert P.acct("bob@far.example") != P.acct("rob@far.example")
    assert P.acct("bob@far.example") != Pseudonymizer(OTHER_KEY).acct("bob@far.example")
    # ids are per observing instance
    assert P.status_id("a.example", "1") != P.status_id("b.example", "1")
    assert P.status_id("a.example", "1") == Pseudonymizer(KEY).status_id("a.example", "1")
    # the author of one post is the mention of another
    first = P.post(from_status(_status(), "home.example"))
    reply = _status(
        id="2",
        uri="https://far.example/users/bob/statuses/2",
        account={"id": "9", "username": "bob", "acct": "bob@far.example"},
        mentions=[{"acct": "alice@home.example", "username": "alice"}],
    )
    second = P.post(from_status(reply, "home.example"))
    assert second.acct == first.mentions[0]
    assert second.mentions == [first.acct]


def test_deletes_and_sightings_resolve_through_the_same_mapping():
    raw = from_status(_status(), "home.example")
    post = P.post(raw)
    now = datetime.now(UTC)
    delete = P.delete(Delete("home.example", raw.id, None, now))
    assert (delete.observed_on, delete.id, delete.uri) == ("home.example", post.id, None)
    assert P.delete(Delete("home.example", raw.id, raw.uri, now)).uri == post.uri
    sighting = P.sighting(Sighting(raw.uri, "home.example", raw.id, now))
    assert (sighting.uri, sighting.id) == (post.uri, post.id)


def test_a_reject_keeps_no_raw_payload_and_no_quoted_value():
    reject = Reject(
        datetime.now(UTC),
        "replay",
        "home.example",
        "capture.sse:12",
        "not a status id: '109000000000000001' at https://home.example/@alice/1",
        "id",
        '{"uri": "https://home.example/users/alice/statuses/1"}',
    )
    masked = P.reject(reject)
    assert masked.raw == "" and masked.where == "capture.sse:12" and masked.field == "id"
    assert "alice" not in masked.reason and "109000000000000001" not in masked.reason
    assert masked.reason.startswith("not a status id:")


def test_every_real_status_pseudonymises_without_leaving_its_accounts_or_uris():
    for where, host, status in all_real_statuses():
        try:
            raw = from_status(status, host)
        except Exception:  # invalid on purpose (malformed.json): rejected, not transformed
            continue
        post = P.post(raw)
        assert post.uri != raw.uri and raw.uri not in repr(post), where
        for acct in [raw.acct, *(raw.mentions or ())]:
            assert re.search(rf"(?<![\w.-]){re.escape(acct)}(?![\w-])", repr(post)) is None, where
            assert f"@{acct.partition('@')[0]} " not in post.text + " ", where


def test_the_pseudonymizer_never_shows_or_pickles_its_key_into_text():
    assert "key" not in repr(P).replace("key_id", "")
    assert KEY.hex() not in repr(P)
    import pickle

    assert pickle.loads(pickle.dumps(P)).acct("a@b") == P.acct("a@b")


# -- the parser of mentions and links: properties --------------------------------------------

_names = st.from_regex(r"[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,12}[a-zA-Z0-9_])?", fullmatch=True)
_hosts = st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){1,2}(:[0-9]{2,5})?", fullmatch=True)
_prose = st.text(
    alphabet=st.characters(blacklist_characters="@/:", blacklist_categories=("Cs",)), max_size=40
)


@given(st.text(alphabet=st.characters(blacklist_characters="@", blacklist_categories=("Cs",))))
def test_text_without_mentions_or_actor_paths_is_unchanged(text):
    if "/users/" not in text:
        assert P.text(text) == text


@given(_prose, _names, _hosts, _prose, st.booleans())
def test_every_mention_and_profile_link_is_replaced_by_its_pseudonym(
    before, name, host, after, as_link
):
    named = f"https://{host}/@{name}/123" if as_link else f"@{name}@{host}"
    text = f"{before} {named} {after}"
    out = P.text(text, None, "home.example")
    user = P.username(f"{name}@{host}")
    assert (f"/@{user}" if as_link else f"@{user}@{host}") in out
    assert named not in out
    assert out.startswith(before) and out.endswith(after)


@given(_prose, _names, _prose)
def test_a_bare_mention_is_the_mentioned_account_or_the_authors_servers(before, name, after):
    text = f"{before} @{name} {after}"
    listed = P.text(text, [f"{name}@far.example"], "home.example")
    assert f"@{P.username(name + '@far.example')} " in listed
    unlisted = P.text(text, [], "home.example")
    assert f"@{P.username(name + '@home.example')} " in unlisted


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_text_and_message_pseudonymise_without_error_and_leave_no_long_digits(text):
    assert isinstance(P.text(text, ["a@b.example"], "c.example"), str)
    message = P.message(text)
    assert re.search(r"\d{8,}", message) is None
    for match in re.finditer(r"[a-z][a-z0-9+.-]*://[^/\s'\"]+(\S*)", message, re.IGNORECASE):
        assert match[1] in ("", "/…") or is_pseudonym_url(match[0]) or match[1].startswith("/@")


# -- the lake's marker -----------------------------------------------------------------------


def test_a_new_lake_takes_the_key_and_refuses_raw_writes_and_other_keys(tmp_path):
    lake = str(tmp_path / "lake")
    claim(lake, None)  # a raw write to a new lake: nothing to check, nothing written
    assert lake_key_id(lake) is None
    claim(lake, P.key_id)
    assert lake_key_id(lake) == P.key_id
    claim(lake, P.key_id)  # the same key again: fine
    with pytest.raises(ConfigError, match="is pseudonymised .*a raw write"):
        claim(lake, None)
    with pytest.raises(ConfigError, match="another key"):
        claim(lake, Pseudonymizer(OTHER_KEY).key_id)
    marker = json.loads((tmp_path / "lake" / "_tootlake" / "pseudonymised.json").read_text())
    assert marker["key_id"] == P.key_id and marker["pseudonymised"] is True
    assert KEY.hex() not in json.dumps(marker)


def test_a_raw_lake_with_posts_refuses_a_pseudonymised_replay_before_writing(tmp_path):
    lake = str(tmp_path / "raw")
    replay([REAL / "mastodonsocial.json"], lake, observed_on="mastodon.social")
    before = deltalake.DeltaTable(f"{lake}/{POSTS_ALL}").version()
    with pytest.raises(ConfigError, match="holds raw .*not pseudonymised"):
        replay([REAL / "mastodonsocial.json"], lake, pseudonymizer=P)
    assert deltalake.DeltaTable(f"{lake}/{POSTS_ALL}").version() == before
    assert lake_key_id(lake) is None


def test_a_pseudonymised_lake_refuses_raw_and_other_key_replays_before_writing(tmp_path):
    lake = str(tmp_path / "pseudo")
    replay([REAL / "mastodonsocial.json"], lake, observed_on="mastodon.social", pseudonymizer=P)
    before = deltalake.DeltaTable(f"{lake}/{POSTS_ALL}").version()
    with pytest.raises(ConfigError, match="pseudonymised"):
        replay([REAL / "mastodonsocial.json"], lake)
    with pytest.raises(ConfigError, match="another key"):
        replay([REAL / "mastodonsocial.json"], lake, pseudonymizer=Pseudonymizer(OTHER_KEY))
    assert deltalake.DeltaTable(f"{lake}/{POSTS_ALL}").version() == before
    compact(lake)  # its audit row says the lake is pseudonymised, too
    audit = deltalake.DeltaTable(f"{lake}/{AUDIT}").to_pyarrow_table().to_pylist()
    assert sorted((row["command"], row["pseudonymised"], row["key_id"]) for row in audit) == [
        ("compact", True, P.key_id),
        ("replay", True, P.key_id),
    ]
    sheet = build_datasheet(lake)
    assert sheet.pseudonymised and sheet.key_ids == [P.key_id]


def test_a_replay_in_pieces_pseudonymises_as_one_process_does(tmp_path, monkeypatch):
    monkeypatch.setattr("tootlake.sources.replay.MIN_PIECE", 256 * 1024)
    source = REAL / "timelines.jsonl"  # 1.7 MB of JSON lines: several pieces
    one = replay([source], str(tmp_path / "one"), workers=1, pseudonymizer=P)
    two = replay([source], str(tmp_path / "two"), workers=2, pseudonymizer=P)
    assert len(cut([source], 2)) == 2  # the run above really was in pieces
    assert (two.posts, two.edits, two.rejected) == (one.posts, one.edits, one.rejected)
    query = "SELECT uri, observed_on, id, acct, text FROM posts ORDER BY uri"
    rows = open_lake(str(tmp_path / "one")).execute(query).fetchall()
    assert rows and rows == open_lake(str(tmp_path / "two")).execute(query).fetchall()
    assert all(is_pseudonym_url(row[0]) for row in rows)


def test_collect_refuses_a_pseudonymised_write_to_a_raw_lake_before_connecting(tmp_path):
    lake = str(tmp_path / "raw")
    replay([REAL / "mastodonsocial.json"], lake, observed_on="mastodon.social")
    # an instance that does not exist: collect must fail on the lake, not on the network
    with pytest.raises(ConfigError, match="holds raw"):
        collect([InstanceSpec("http://127.0.0.1:9")], lake, pseudonymizer=P, duration=0.1)


def test_the_cli_pseudonymises_a_replay_with_a_key_file_and_refuses_to_mix(tmp_path):
    key = tmp_path / "lake.key"
    ident = generate_key(key)
    lake = str(tmp_path / "lake")
    runner = CliRunner()
    source = str(REAL / "mastodonsocial.json")
    result = runner.invoke(
        main, ["replay", source, "--lake", lake, "--pseudonymize", str(key), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert lake_key_id(lake) == ident
    acct = open_lake(lake).execute("SELECT acct FROM posts LIMIT 1").fetchone()[0]
    assert re.fullmatch(r"[0-9a-f]{20}@mastodon\.social|[0-9a-f]{20}@[\w.-]+", acct)
    result = runner.invoke(main, ["replay", source, "--lake", lake, "--quiet"])
    assert result.exit_code != 0
    assert f"pseudonymised (key id {ident})" in result.output
    # the config file names the key as well
    config = tmp_path / "tootlake.toml"
    config.write_text(f'pseudonymize = "{key}"\n')
    result = runner.invoke(
        main,
        ["replay", source, "--lake", lake, "--quiet"],
        env={"TOOTLAKE_CONFIG": str(config)},
    )
    assert result.exit_code == 0, result.output
    # collect takes the flag too, and checks the lake before it connects anywhere
    raw = str(tmp_path / "raw")
    replay([REAL / "mastodonsocial.json"], raw, observed_on="mastodon.social")
    result = runner.invoke(
        main,
        ["collect", "--instance", "http://127.0.0.1:9", "--lake", raw, "--pseudonymize", str(key)],
    )
    assert result.exit_code != 0 and "holds raw (not pseudonymised) data" in result.output


# -- end to end against the simulated fediverse ----------------------------------------------


class Capture:
    """The SSE stream `/api/v1/streaming/public` of one simulated instance, recorded over a
    real socket (HTTP/1.1, de-chunked when stopped) into an SSE capture file for replay."""

    def __init__(self, url: str, path: Path) -> None:
        self.path = path
        host, port = url.removeprefix("http://").split(":")
        self.host = f"{host}:{port}"
        self._sock = socket.create_connection((host, int(port)), timeout=5)
        self._sock.sendall(
            f"GET /api/v1/streaming/public HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        self._sock.settimeout(0.2)
        self._data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                break
            self._data += chunk

    def stop(self) -> Path:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        head, _, body = bytes(self._data).partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0] and b"chunked" in head.lower(), head
        out = bytearray()
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0 or len(rest) < size + 2:
                break  # the stream's end, or cut mid-chunk when stopped
            out += rest[:size]
            body = rest[size + 2 :]
        self.path.write_bytes(bytes(out))
        return self.path


def _sse_events(path: Path) -> Iterator[tuple[str, str]]:
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        event = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if event and data is not None:
            yield event, data


class Published:
    """The raw identifiers the simulator published, by kind; see `find`."""

    def __init__(self) -> None:
        self.long: set[str] = set()  # uris, urls, qualified accts: never inside a pseudonym
        self.names: set[str] = set()  # usernames and bare accts
        self.display: set[str] = set()  # display names
        self.ids: set[str] = set()  # status and account ids

    def add_status(self, status: Any, observer: str) -> None:
        if not isinstance(status, dict):
            return
        for key in ("uri", "url"):
            self._long(status.get(key))
        for key in ("id", "in_reply_to_id", "in_reply_to_account_id"):
            self._id(status.get(key))
        self.add_account(status.get("account"), observer)
        for mention in status.get("mentions") or ():
            self.add_account(mention, observer)
        quote = status.get("quote")
        if isinstance(quote, dict):
            self._id(quote.get("quoted_status_id"))
            self.add_status(quote.get("quoted_status"), observer)
        self.add_status(status.get("reblog"), observer)

    def add_account(self, account: Any, observer: str) -> None:
        if not isinstance(account, dict):
            return
        self._id(account.get("id"))
        for key in ("url", "uri"):
            self._long(account.get(key))
        username, acct = account.get("username"), account.get("acct")
        if isinstance(username, str) and username:
            self.names.add(username)
        if isinstance(acct, str) and acct:
            if "@" in acct:
                self.long.add(acct)
                self.names.add(acct.partition("@")[0])
            else:
                self.names.add(acct)
                url = account.get("url") or ""
                host = url.split("://", 1)[-1].split("/", 1)[0] if "://" in url else observer
                self.long.add(f"{acct}@{host}")
        name = account.get("display_name")
        if isinstance(name, str) and name.strip():
            self.display.add(name)
        self.add_account(account.get("moved"), observer)

    def _long(self, value: Any) -> None:
        if isinstance(value, str) and value:
            self.long.add(value)

    def _id(self, value: Any) -> None:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            self.ids.add(str(value))

    def find(self, value: str, *, prose: bool) -> list[str]:
        """The raw identifiers in one string value of the lake. The rule (whole values and
        tokens, never bare substrings, which short ids and names match inside hashes by chance):
          * any value equal to any identifier;
          * uris, urls and qualified accts anywhere, between token boundaries (they hold
            `/`, `:` or `@`, which no pseudonym does after its host);
          * status and account ids of 6+ characters as a token (a run of [\\w.-]);
          * usernames as a token; in prose (text, spoiler_text) as an @mention or a profile
            path (/@name, /users/name) only: a name that is also a word of the text is the
            documented limit "the text can still identify people";
          * display names as a substring outside prose."""
        found = []
        whole = {value} & (self.long | self.names | self.display | self.ids)
        found += sorted(whole)
        tokens = set(re.findall(r"[\w.-]+", value))
        found += sorted(i for i in self.ids & tokens if len(i) >= 6)
        for ident in self.long:
            if ident in value and re.search(rf"(?<![\w.-]){re.escape(ident)}(?![\w-])", value):
                found.append(ident)
        if prose:
            for name in self.names:
                if name in value and re.search(
                    rf"(?:(?<![\w/])@|/@|/users/){re.escape(name)}(?![\w-])", value, re.I
                ):
                    found.append(name)
        else:
            found += sorted(self.names & tokens)
            found += sorted(d for d in self.display if d in value)
        return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


def _leaks(lake: str, published: Published) -> list[tuple[str, str, str]]:
    """(table, column, identifier) of every raw identifier in any string of the lake's
    tables (read with delta-rs, every column, list elements too) and of its run files."""
    leaks = []
    tables_read = 0
    for table in (POSTS, POSTS_ALL, SIGHTINGS, DELETES, REJECTS, AUDIT, LANGUAGES):
        path = Path(lake) / table
        if not (path / "_delta_log").is_dir():
            continue
        tables_read += 1
        data: pa.Table = deltalake.DeltaTable(str(path)).to_pyarrow_table()
        for column in data.column_names:
            kind = data.schema.field(column).type
            if not (
                pa.types.is_string(kind)
                or pa.types.is_large_string(kind)
                or (pa.types.is_list(kind) and pa.types.is_string(kind.value_type))
            ):
                continue
            prose = column in ("text", "spoiler_text")
            for value in data.column(column).to_pylist():
                for text in _strings(value):
                    if column.endswith("_json"):  # audit: JSON text, its strings one by one
                        strings = list(_strings(json.loads(text)))
                    else:
                        strings = [text]
                    for string in strings:
                        leaks += [(table, column, i) for i in published.find(string, prose=prose)]
    assert tables_read >= 5, f"only {tables_read} tables in {lake}"
    for run in (Path(lake) / "_tootlake" / "runs").glob("*.json"):
        for string in _strings(json.loads(run.read_text())):
            leaks += [("runs", run.name, i) for i in published.find(string, prose=False)]
    return leaks


# The report's sections whose figures must not change (identifier columns left out: those
# are the pseudonyms, compared by their counts)
_FIGURES = (
    "summary", "apps", "hourly", "languages", "length_by_language", "hashtags", "instances",
    "edits", "deletes", "content_warnings_by_language", "content_warnings_by_origin",
    "bots_daily", "account_age", "terms",
)  # fmt: skip
_IDENTIFIER_COLUMNS = {"top_user", "top_bot", "acct", "url", "uri", "source", "target", "account"}


def _figures(lake: str) -> dict[str, Any]:
    report = build_report(lake)
    figures: dict[str, Any] = {}
    for name in _FIGURES:
        table = report[name]
        kept = [c for c in table.column_names if c not in _IDENTIFIER_COLUMNS]
        figures[name] = table.select(kept).to_pylist()
    daily = report["daily"]
    figures["daily"] = daily.select(
        [c for c in daily.column_names if c not in _IDENTIFIER_COLUMNS]
    ).to_pylist()
    figures["longest"] = report["longest"].column("characters").to_pylist()
    # the time from post to delete is read from snowflake ids: pseudonymised, it is unknown
    (deletes,) = figures["deletes"]
    figures["delete_times"] = (
        deletes.pop("median_seconds_to_delete"),
        deletes.pop("p90_seconds_to_delete"),
    )
    # the most mentioned accounts: ties may be cut at other accounts, never other counts
    figures["mentioned"] = sorted(
        (row["mentions"], row["mentioned_by"]) for row in report["mentioned_accounts"].to_pylist()
    )
    return figures


@pytest.mark.slow
def test_a_pseudonymised_collection_and_replay_hold_no_raw_identifier_and_the_same_figures(
    fediverse,  # noqa: F811 - the collector suites' fixture, imported above
    tmp_path,
):
    sim: FediverseThread = fediverse(
        instances=2, seed=12, settings=InstanceSettings(token=TOKEN), hostile=0.03, quotes=0.1
    )
    fed = sim.fed
    captures = [Capture(url, tmp_path / f"capture{i}.sse") for i, url in enumerate(fed.urls)]
    wait_for(all_connected(sim), what="the captures' streams")
    collected = str(tmp_path / "collected")
    collector = Running([InstanceSpec(url, TOKEN) for url in fed.urls], collected, pseudonymizer=P)
    wait_for(all_connected(sim, 2), what="the collector's streams")
    sim.call(fed.publish, 250, rate=500, edits=0.05, deletes=0.04)
    # a delete published after its post, as the last thing
    doomed = sim.call(fed.post, public=True, hostile=())
    time.sleep(0.5)
    sim.call(fed.delete, doomed)
    collector.settle()
    collector.stop()
    paths = [capture.stop() for capture in captures]
    truth = sim.call(fed.truth, include_opted_out=True)
    assert truth.deleted and truth.invalid, "the workload must delete and reject some posts"

    # What the simulator published: every status and delete of the captures, and its posts
    published = Published()
    for capture, path in zip(captures, paths, strict=True):
        for event, data in _sse_events(path):
            if event == "delete":
                published.ids.add(data)
            else:
                try:
                    published.add_status(json.loads(data), capture.host)
                except ValueError:
                    continue  # a hostile payload that is not JSON: it is rejected
    for post in sim.call(fed.posts):
        published.long |= {post.uri, post.url}
        published.ids |= {str(local_id) for local_id in post.copies.values()}
        if post.draft is not None:
            author = post.draft.author
            published.names.add(author.username)
            published.long.add(f"{author.username}@{author.home}")
            published.display.add(author.display_name)
    assert len(published.long) > 500 and len(published.ids) > 500

    # the collected lake: exactly the truth's posts (deletes applied), under pseudonyms
    con = open_lake(collected)
    uris = {row[0] for row in con.execute("SELECT uri FROM posts").fetchall()}
    assert uris == {P.uri(uri) for uri in truth.uris}
    assert P.uri(doomed.uri) not in uris
    assert _leaks(collected, published) == []
    audit = con.execute("SELECT pseudonymised, key_id FROM audit").fetchall()
    assert audit == [(True, P.key_id)]

    # the same captures replayed raw and pseudonymised: the same figures
    raw, pseudo = str(tmp_path / "raw"), str(tmp_path / "pseudo")
    for capture, path in zip(captures, paths, strict=True):
        replay([path], raw, observed_on=capture.host, include_opted_out=True)
        replay([path], pseudo, observed_on=capture.host, include_opted_out=True, pseudonymizer=P)
    assert _leaks(pseudo, published) == []
    assert _leaks(raw, published) != []  # the rule finds what is there
    raw_uris = {r[0] for r in open_lake(raw).execute("SELECT uri FROM posts").fetchall()}
    pseudo_con = open_lake(pseudo)
    pseudo_uris = {r[0] for r in pseudo_con.execute("SELECT uri FROM posts").fetchall()}
    assert pseudo_uris == {P.uri(uri) for uri in raw_uris} and doomed.uri not in raw_uris
    ((rejects, with_raw),) = pseudo_con.execute(
        "SELECT count(*), count(*) FILTER (WHERE raw <> '') FROM rejects"
    ).fetchall()
    assert rejects > 0 and with_raw == 0
    raw_figures, pseudo_figures = _figures(raw), _figures(pseudo)
    assert raw_figures.pop("delete_times")[0] is not None
    assert pseudo_figures.pop("delete_times") == (None, None)
    assert pseudo_figures == raw_figures
    assert raw_figures["summary"][0]["posts"] > 100

    # the HTML report shows pseudonyms, and links to no post
    page = render_html_report(pseudo)
    assert "Read it on its instance" not in page
    assert [leak for leak in published.long if leak in page] == []


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=130), value=st.text(max_size=80))
def test_the_pseudonyms_are_hmac_sha256_under_the_key(key, value):
    """The hand-inlined HMAC (its padded states hashed once) equals the standard library's."""
    import hashlib
    import hmac

    want = hmac.new(key, b"acct\x00" + value.encode("utf-8", "surrogatepass"), hashlib.sha256)
    assert Pseudonymizer(key)._hash(b"acct", value, 64) == want.hexdigest()


def test_the_collectors_own_messages_keep_their_meaning_when_pseudonymised():
    """A pseudonymised run masks quoted values in messages (they may be a server's words); the
    collector's own words about an instance (its live feed access) are not quoted, so the
    summary still says why a token is needed."""
    from tootlake.sources.mastodon import InstanceInfo, choose_mode

    for access in ("authenticated", "disabled"):
        info = InstanceInfo.from_v2(
            "https://a.example",
            {"version": "4.5.0", "configuration": {"timelines_access": {"live_feeds": {
                "local": access, "remote": access}}}},
        )  # fmt: skip
        mode, reason = choose_mode(info, "public", has_token=False)
        assert mode == "needs token"
        assert f"live feed access is {access}" in P.message(reason)
