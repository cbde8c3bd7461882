"""The interaction graph (issue 13): the report's sections (the most mentioned accounts,
mentions and replies between instances, the share that crosses servers) and `tootlake graph`'s
edge lists, each equal to the answer computed here from the raw statuses the simulator served
(and checked against the simulator's own truth: its drafts, authors and quotes), never from
the lake. The GraphML is opened with networkx."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime
from typing import Any

import networkx as nx
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tootlake.analysis.graph import edges, graphml_lines, write_edges
from tootlake.analysis.report import build_report
from tootlake.cli import main
from tootlake.lake.reader import open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.record import from_status, skip_reason
from tootlake.simulate import FediverseThread

POSTS = 900


def _host(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].lower()


def _qualified(acct: str, url: str) -> str:
    return acct if "@" in acct else f"{acct}@{_host(url)}"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A simulated fediverse's statuses (every copy of every public post, as served), the
    lake they make, and the simulator's truth. Replies to other people are kept (public
    timelines leave them out; a replay of another endpoint's recording would not)."""
    with FediverseThread(instances=3, seed=13, quotes=0.15) as sim:
        fed = sim.fed
        published = sim.call(fed.publish, POSTS)
        statuses = []
        for post in published:
            for index, local_id in post.copies.items():
                inst = fed.instances[index]
                status = fed.renderer.copy(post, inst.observer, local_id, stream=True)
                statuses.append((inst.host, status, post))
        authors = {post.uri: post.draft.author for post in published}
    lake = str(tmp_path_factory.mktemp("interactions") / "lake")
    writer = LakeWriter(lake)
    kept: dict[str, tuple[dict[str, Any], Any]] = {}
    for host, status, post in statuses:
        if skip_reason(status) is None:
            writer.add([from_status(status, host)])
            kept.setdefault(status["uri"], (status, post))
    writer.flush()
    return {"lake": lake, "kept": kept, "authors": authors}


def _expected(kept: dict[str, tuple[dict[str, Any], Any]]) -> dict[str, Counter[tuple[str, str]]]:
    """Edges by kind, from the raw statuses: (source acct, target acct) -> posts."""
    out: dict[str, Counter[tuple[str, str]]] = {
        "mentions": Counter(),
        "replies": Counter(),
        "quotes": Counter(),
    }
    authors = {}
    for uri, (status, _) in kept.items():
        account = status["account"]
        authors[uri] = _qualified(account["acct"], account["url"])
    for uri, (status, _) in kept.items():
        source = authors[uri]
        for m in status["mentions"]:
            out["mentions"][source, _qualified(m["acct"], m["url"])] += 1
        if status["in_reply_to_account_id"] == status["account"]["id"]:
            out["replies"][source, source] += 1
        else:
            for m in status["mentions"]:
                if m["id"] == status["in_reply_to_account_id"]:
                    out["replies"][source, _qualified(m["acct"], m["url"])] += 1
        quote = status.get("quote") or {}
        quoted = (quote.get("quoted_status") or {}).get("uri")
        if quoted in authors:
            out["quotes"][source, authors[quoted]] += 1
    return out


def _instance(acct: str) -> str:
    return acct.rsplit("@", 1)[1].lower()


def test_the_simulator_serves_what_its_truth_says(simulated):
    """Mentions, self-replies, quotes and account flags as served equal the drafts."""
    kept = simulated["kept"]
    quotes = mentions = replies = 0
    for status, post in kept.values():
        draft = post.draft
        assert [_qualified(m["acct"], m["url"]) for m in status["mentions"]] == [
            f"{u}@{h}" for u, h in draft.mentions
        ]
        quote = status["quote"]
        if post.quoted is None:
            assert quote is None
        else:
            assert quote["state"] == post.quote_state
            uri = (quote.get("quoted_status") or {}).get("uri")
            assert uri == post.quote_uri
            quotes += 1
            if post.quote_uri:  # the fallback paragraph comes first
                assert status["content"].startswith('<p class="quote-inline">RE: ')
        author = draft.author
        account = status["account"]
        assert account["group"] == author.group and account["locked"] == author.locked
        moved = account.get("moved")
        assert (moved and tuple(moved["acct"].split("@"))) == (author.moved_to or None)
        mentions += bool(draft.mentions)
        replies += draft.reply is not None
    assert quotes > 50 and mentions > 50 and replies > 50


def test_post_columns_carry_the_interactions(simulated):
    con = open_lake(simulated["lake"])
    rows = con.execute(
        'SELECT uri, acct, mentions, in_reply_to_acct, quote_uri, quote_state, "group", '
        "locked, moved_to FROM posts"
    ).fetchall()
    assert len(rows) == len(simulated["kept"])
    for uri, acct, mentions, reply_to, quote_uri, quote_state, group, locked, moved in rows:
        status, post = simulated["kept"][uri]
        author = post.draft.author
        assert acct == f"{author.username}@{author.home}"
        assert mentions == [f"{u}@{h}" for u, h in post.draft.mentions]
        if post.draft.reply == "self":
            assert reply_to == acct
        elif post.draft.reply == "other" and post.draft.mentions:  # it mentions whom it answers
            assert reply_to == "@".join(post.draft.mentions[0])
        else:
            assert reply_to is None
        assert quote_uri == post.quote_uri and quote_state == post.quote_state
        assert (group, locked) == (author.group, author.locked)
        assert moved == ("@".join(author.moved_to) if author.moved_to else None)


def test_the_report_sections_equal_the_raw_statuses(simulated):
    expected = _expected(simulated["kept"])
    report = build_report(simulated["lake"], top=10)
    mentioned = Counter()
    by: dict[str, set[str]] = {}
    for (source, target), n in expected["mentions"].items():
        mentioned[target] += n
        by.setdefault(target, set()).add(source)
    want = sorted(mentioned.items(), key=lambda kv: (-kv[1], -len(by[kv[0]]), kv[0]))[:10]
    got = report["mentioned_accounts"].to_pylist()
    assert [(r["account"], r["mentions"], r["mentioned_by"]) for r in got] == [
        (acct, n, len(by[acct])) for acct, n in want
    ]
    assert all(r["instance"] == _instance(r["account"]) for r in got)

    pairs: Counter[tuple[str, str, str]] = Counter()
    for kind in ("mentions", "replies"):
        for (source, target), n in expected[kind].items():
            pairs[kind, _instance(source), _instance(target)] += n
    cross = {r["kind"]: r for r in report["cross_server"].to_pylist()}
    for kind, name in (("mentions", "mention"), ("replies", "reply")):
        total = sum(n for (k, _, _), n in pairs.items() if k == kind)
        crossing = sum(n for (k, s, t), n in pairs.items() if k == kind and s != t)
        assert (cross[name]["interactions"], cross[name]["cross_server"]) == (total, crossing)
        assert cross[name]["cross_server_share"] == round(crossing / total, 4)
    assert cross["all"]["interactions"] == sum(pairs.values())
    # the heatmap's cells: every pair among the busiest instances
    busy: Counter[str] = Counter()
    for (_, s, t), n in pairs.items():
        busy[s] += n
        busy[t] += n
    top = {name for name, _ in sorted(busy.items(), key=lambda kv: (-kv[1], kv[0]))[:12]}
    cells: Counter[tuple[str, str]] = Counter()
    for (_, s, t), n in pairs.items():
        if s in top and t in top:
            cells[s, t] += n
    got_cells = {
        (r["source_instance"], r["target_instance"]): r["interactions"]
        for r in report["interaction_pairs"].to_pylist()
    }
    assert got_cells == dict(cells)


@pytest.mark.parametrize("kind", ["mentions", "replies", "quotes"])
def test_account_edges_equal_the_raw_statuses(simulated, kind):
    expected = _expected(simulated["kept"])[kind]
    table = edges(open_lake(simulated["lake"]), kind)
    got = {(r["source"], r["target"]): r["weight"] for r in table.to_pylist()}
    assert got == dict(expected) and got
    weights = table.column("weight").to_pylist()
    assert weights == sorted(weights, reverse=True)


def test_instance_edges_add_up_the_three_kinds(simulated):
    expected = _expected(simulated["kept"])
    want: Counter[tuple[str, str, str]] = Counter()
    for kind, found in expected.items():
        for (source, target), n in found.items():
            want[kind, _instance(source), _instance(target)] += n
    table = edges(open_lake(simulated["lake"]), "instances")
    for row in table.to_pylist():
        key = row["source"], row["target"]
        for kind in ("mentions", "replies", "quotes"):
            assert row[kind] == want.pop((kind, *key), 0)
        assert row["weight"] == row["mentions"] + row["replies"] + row["quotes"]
    assert not +want  # nothing left over


def test_graphml_opens_in_networkx_with_the_lake_degrees(simulated, tmp_path):
    con = open_lake(simulated["lake"])
    table = edges(con, "mentions")
    path = tmp_path / "mentions.graphml"
    write_edges(table, str(path), "graphml")
    graph = nx.read_graphml(path)
    assert isinstance(graph, nx.DiGraph)
    graph = nx.relabel_nodes(graph, {n: d["label"] for n, d in graph.nodes(data=True)})
    # degrees against the lake, computed in SQL over the posts' mention lists
    rows = con.execute(
        """
        SELECT acct, count(*) FROM (
            SELECT acct FROM (SELECT acct, unnest(mentions) AS m FROM posts) GROUP BY acct, m
        ) GROUP BY acct
        """
    ).fetchall()
    for acct, out_degree in rows:
        assert graph.out_degree(acct) == out_degree
    weighted_in = dict(
        con.execute(
            "SELECT m, count(*) FROM (SELECT unnest(mentions) AS m FROM posts) GROUP BY m"
        ).fetchall()
    )
    for acct, n in weighted_in.items():
        assert graph.in_degree(acct, weight="weight") == n
    edge = next(iter(graph.edges(data=True)))
    assert isinstance(edge[2]["weight"], int) and isinstance(edge[2]["first_at"], str)


def test_graphml_keeps_hostile_accts_as_text():
    import pyarrow as pa

    odd = ['a"b@x.example', "<script>&amp;@y.example", "ctl\x01\x1b[31m@z.example",
           "non\ufffechar@w.example", "ok@v.example", "tab\tnew\nline@u.example"]  # fmt: skip
    table = pa.table(
        {
            "source": odd,
            "target": odd[1:] + odd[:1],
            "weight": pa.array(range(1, 7), pa.int64()),
        }
    )
    text = "".join(graphml_lines(table))
    graph = nx.parse_graphml(text)
    labels = sorted(d["label"] for _, d in graph.nodes(data=True))
    assert labels == sorted(
        [
            'a"b@x.example',
            "<script>&amp;@y.example",
            "ctl\ufffd\ufffd[31m@z.example",
            "non\ufffdchar@w.example",
            "ok@v.example",
            "tab\tnew\nline@u.example",
        ]
    )
    assert graph.number_of_edges() == 6


@pytest.mark.parametrize("fmt", ["csv", "parquet", "graphml"])
def test_graph_command_writes_each_format(simulated, tmp_path, fmt):
    out = tmp_path / f"edges.{fmt}"
    result = CliRunner().invoke(
        main,
        ["graph", "--lake", simulated["lake"], "--edges", "replies", "--format", fmt,
         "--output", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    want = dict(_expected(simulated["kept"])["replies"])
    if fmt == "csv":
        rows = pcsv.read_csv(out).to_pylist()
    elif fmt == "parquet":
        rows = pq.read_table(out).to_pylist()
    else:
        graph = nx.read_graphml(out)
        label = {n: d["label"] for n, d in graph.nodes(data=True)}
        rows = [
            {"source": label[s], "target": label[t], "weight": d["weight"]}
            for s, t, d in graph.edges(data=True)
        ]
    assert {(r["source"], r["target"]): r["weight"] for r in rows} == want


def test_graph_command_time_window_and_stdout(simulated):
    con = open_lake(simulated["lake"])
    times = sorted(r[0] for r in con.execute("SELECT created_at FROM posts").fetchall())
    middle: datetime = times[len(times) // 2]
    since = middle.isoformat()
    want = con.execute(
        "SELECT count(*) FROM (SELECT unnest(mentions) FROM posts WHERE created_at >= ?)",
        [middle],
    ).fetchone()[0]
    result = CliRunner().invoke(
        main, ["graph", "--lake", simulated["lake"], "--since", since, "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    rows = pcsv.read_csv(io.BytesIO(result.stdout_bytes)).to_pylist()
    assert sum(r["weight"] for r in rows) == want
    assert all(r["first_at"] >= middle for r in rows)
    bad = CliRunner().invoke(main, ["graph", "--lake", simulated["lake"], "--since", "soon"])
    assert bad.exit_code == 2 and "not a date or time" in bad.output
