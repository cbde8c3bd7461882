"""Federation reach on a simulated fediverse with known federation delays, collected over real
sockets: the reach analyses equal the answer computed from the simulator's own record (which
instances got each post, and when each copy appeared: `Fediverse.arrivals`), never from the
lake.

How far the lake may be from that answer, and why:
- a copy's `seen_at` is when the collector handled it, after the instance sent it: the
  collector's latency on loopback, at most LATENCY (generous: 2 cores shared with other work);
- the lake's `created_at` is that of the copy written first; a remote copy carries it truncated
  to the second (as real servers do), so a delay computed from it is up to 1 s longer.
So a measured delay is the true one plus 0 to 1 s + LATENCY, and so are its quantiles (every
order statistic moves by no more than the largest shift). Counts are exact."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from urllib.parse import urlsplit

import pytest

from tests.test_reach_behaviour import expected_reach_by_origin
from tootlake.analysis import queries
from tootlake.lake.reader import open_lake
from tootlake.simulate import Fediverse, FediverseThread, InstanceSettings
from tootlake.sources.fleet import InstanceSpec

from .conftest import Running, all_connected, assert_lake_matches, wait_for

TOKEN = "reach-token"
DELAYS = {1: 2.0, 2: 5.0, 3: 5.0}  # target index -> seconds; instance 0 gets copies at once
LATENCY = 2.0  # seconds a copy may take from the instance to the collector's seen_at
# (the largest of ~250: one stall of a loaded CI machine; the median is held to 0.5 s)
TRUNCATION = 1.0  # a remote copy's created_at is cut to the second


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (DuckDB's quantile_cont)."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    low, high = math.floor(pos), math.ceil(pos)
    return xs[low] + (xs[high] - xs[low]) * (pos - low)


def _origin(uri: str) -> str:
    return (urlsplit(uri).netloc.rpartition("@")[2]).lower()


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A lake collected from four instances, three behind delays, and the simulator's
    record of every public post: its origin, created time and arrivals (host -> seconds)."""
    lake = str(tmp_path_factory.mktemp("reach-delays") / "lake")
    with FediverseThread(
        instances=4, seed=21, federation=2, delays=DELAYS, settings=InstanceSettings(token=TOKEN)
    ) as sim:
        fed = sim.fed
        collector = Running([InstanceSpec(url, TOKEN) for url in fed.urls], lake)
        wait_for(all_connected(sim), what="four streams")
        posts = sim.call(fed.publish, 80, rate=40)
        # posts that reach no other instance: their delay is NULL, their share not seen elsewhere
        posts += [sim.call(fed.post, origin=0, targets=(), public=True) for _ in range(3)]
        wait_for(lambda: sim.call(lambda: fed.in_flight == 0), timeout=20, what="delayed copies")
        collector.settle(quiet=1.0)
        collector.stop()
        truth = sim.call(fed.truth, include_opted_out=True)
        record = {
            post.uri: {
                "origin": _origin(post.uri),
                "created": post.created,
                "arrivals": sim.call(fed.arrivals, post),
            }
            for post in posts
            if post.uri in truth.latest
        }
        hosts = fed.hosts
    assert_lake_matches(lake, truth)
    return {"lake": lake, "record": record, "hosts": hosts}


def hand_reach(record):
    """Per post: origin, instances that got it, and the true delay to the first other one."""
    rows = []
    for post in record.values():
        elsewhere = [d for host, d in post["arrivals"].items() if host != post["origin"]]
        rows.append(
            {
                "origin": post["origin"],
                "n": len(post["arrivals"]),
                "delay": min(elsewhere) if elsewhere else None,
            }
        )
    return rows


def test_copies_appear_after_their_known_delays(collected):
    """The simulator's record itself: each copy arrived its configured delay after creation
    (plus the event loop's lateness), and the delayed instances were reached."""
    hosts = collected["hosts"]
    seen = defaultdict(list)
    for post in collected["record"].values():
        for host, delay in post["arrivals"].items():
            configured = 0.0 if host == post["origin"] else DELAYS.get(hosts.index(host), 0.0)
            assert configured <= delay < configured + 1.0, (host, delay)  # loop lateness
            seen[hosts.index(host)].append(delay)
    assert all(seen[i] for i in range(4))


def test_sightings_are_the_arrivals_plus_collector_latency(collected):
    """Every copy the simulator delivered is sighted once, `seen_at` between its arrival and
    LATENCY later (measured from the origin's own time, so no truncation)."""
    record = collected["record"]
    rows = (
        open_lake(collected["lake"])
        .execute("SELECT uri, observed_on, epoch(seen_at) FROM sightings")
        .fetchall()
    )
    got = {(uri, host): at for uri, host, at in rows}
    expected = {(uri, host) for uri, post in record.items() for host in post["arrivals"]}
    assert got.keys() == expected
    lateness = []
    for (uri, host), at in got.items():
        post = record[uri]
        late = at - post["created"] - post["arrivals"][host]
        assert -0.001 <= late <= LATENCY, (uri, host, late)
        lateness.append(late)
    assert statistics.median(lateness) < 0.5


def test_reach_by_origin_equals_the_simulators_answer(collected):
    expected = expected_reach_by_origin(hand_reach(collected["record"]))
    got = queries.reach_by_origin(open_lake(collected["lake"])).to_pylist()
    assert got == expected
    # simulated origins reach their home and two others; virtual ones only two
    assert {r["max_instances"] for r in got} == {2, 3}
    assert min(r["seen_elsewhere_share"] for r in got) < 1


def test_reach_delay_per_pair_equals_the_known_delays(collected):
    """First sighting on each instance minus `created_at`, per (origin, instance) pair, as the
    analyses compute it, within the tolerance of the known delay."""
    con = open_lake(collected["lake"])
    rows = con.execute(
        """
        SELECT p.origin, s.observed_on, epoch(s.seen_at) - epoch(p.created_at)
        FROM posts p JOIN sightings s ON s.uri = p.uri
        WHERE s.observed_on <> p.origin
        """
    ).fetchall()
    measured = defaultdict(list)
    for origin, host, seconds in rows:
        measured[origin, host].append(seconds)
    expected = defaultdict(list)
    for post in collected["record"].values():
        for host, delay in post["arrivals"].items():
            if host != post["origin"]:
                expected[post["origin"], host].append(delay)
    assert measured.keys() == expected.keys()
    for pair, delays in expected.items():
        got = sorted(measured[pair])
        assert len(got) == len(delays)
        for q in (0.0, 0.5, 1.0):
            shift = quantile(got, q) - quantile(delays, q)
            assert 0 <= shift <= TRUNCATION + LATENCY, (pair, q, shift)
    targets = {collected["hosts"].index(host) for _, host in expected}
    assert targets == {0, 1, 2, 3}


def test_reach_delay_distribution_equals_the_simulators_answer(collected):
    delays = [r["delay"] for r in hand_reach(collected["record"]) if r["delay"] is not None]
    got = queries.reach_delay(open_lake(collected["lake"])).to_pylist()
    # every delay is under a minute, measured or true: the buckets are exact
    assert [r["posts"] for r in got] == [len(delays)] + [0] * (len(got) - 1)
    assert got[0]["share"] == 1.0
    for key, q in (("median_seconds", 0.5), ("p90_seconds", 0.9)):
        shift = got[0][key] - round(quantile(delays, q), 1)
        # rounding to 0.1 s on both sides adds at most 0.1
        assert -0.1 <= shift <= TRUNCATION + LATENCY + 0.1, (key, shift)
    # the delays are what the relays make: some posts first reached another instance at
    # once, some after 2 s, some after 5 s (federated to instances 2 and 3 only)
    assert {0 if d < 1 else 2 if d < 3 else 5 for d in delays} == {0, 2, 5}


def test_a_copy_on_its_way_arrives_edited_or_not_at_all():
    """The delay's edges: an edit on the way arrives with the copy, a delete on the way
    stops it, a (origin, target) pair's delay goes before its target's, and bad delays are
    refused with what is wrong."""
    delays = {1: 0.2, (0, 2): 0.4, 2: 30.0}
    with FediverseThread(instances=3, seed=5, delays=delays) as sim:
        fed = sim.fed
        edited = sim.call(fed.post, origin=0, targets=(1, 2), public=True)
        gone = sim.call(fed.post, origin=0, targets=(1, 2), public=True)
        assert sorted(edited.copies) == [0] and sim.call(lambda: fed.in_flight) == 4
        sim.call(fed.edit, edited)
        sim.call(fed.delete, gone)
        wait_for(lambda: sim.call(lambda: fed.in_flight == 0), timeout=5, what="the copies")
        arrivals = sim.call(fed.arrivals, edited)
        hosts = fed.hosts
        assert arrivals[hosts[0]] == 0.0
        assert 0.2 <= arrivals[hosts[1]] < 1.2 and 0.4 <= arrivals[hosts[2]] < 1.4
        assert sorted(gone.copies) == [0]  # deleted before its copies arrived
        copy = fed.renderer.copy(edited, fed.instances[2].observer, edited.copies[2])
        assert copy["edited_at"] is not None
    for bad, what in (({1: -1.0}, "seconds >= 0"), ({7: 1.0}, "indices are 0 to 2")):
        with pytest.raises(ValueError, match=what):
            Fediverse(instances=3, delays=bad)  # checked before anything starts
