"""The simulated fediverse: N instances, a publisher, federation and the ground truth.

A post is authored on one server, its origin (a simulated instance, or a "virtual" server
that is not simulated), and federated to k simulated instances. Each instance that gets it
gives it its own local id and publishes it on its streams and public timeline, at once or
after a known federation delay (`delays`). Everything the simulator publishes is recorded, so
`truth()` and `arrivals()` say exactly what a correct collector's lake should hold.

    async with Fediverse(instances=3, seed=1) as fed:
        print(fed.urls)
        await fed.publish(1000, rate=200, edits=0.02, deletes=0.01)
        truth = fed.truth()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tootlake.simulate.directory import DELETED, SUSPENDED, Directory
from tootlake.simulate.hostile import GOOD, INSTANCE_KINDS, INVALID, SKIPPED, HostilePicker
from tootlake.simulate.server import Instance, InstanceSettings
from tootlake.simulate.status import Renderer, SimPost
from tootlake.simulate.workload import Draft, Workload

__all__ = ["Fediverse", "FediverseThread", "Truth"]


@dataclass(frozen=True)
class Truth:
    """What a lake collected from the simulated instances should hold.

    `latest`: uri -> `edited_at` of its newest version (None: never edited) for every post
    that was published, is public and streamable (no boosts, no replies to others), reached
    an instance whose live feed for it is not disabled, is not deleted, and whose author did
    not opt out. `edited_at` is the origin's (millisecond) time; remote copies carry it
    truncated to the second, as real servers do.

    Consent (`truth(consent=...)`): an opt-out tag in a bio or a profile field shows on every
    copy, but `noindex` only on the author's home instance (Mastodon serializes it for local
    accounts only), so a collector that does not collect the home instance keeps a noindex
    author's posts, and so does `latest`; `opted_out` holds the uris some collected copy
    excludes. The consent fields are the authors' as published: hostile mutations of them
    (`hostile=...`) are not judged.

    Hostile statuses (`Fediverse(hostile=...)`, see `tootlake.simulate.hostile`): `invalid`
    maps the uri of each collectable post served invalid to its marker (a collector rejects
    every copy: the marker is in the raw payload of its rejects); such posts are not in
    `latest`. `coerced` (uri -> fields served with a wrong type) and `shaped` (uri -> the other
    server's shape) are GOOD posts, in `latest`. `verdict(uri)` says which a uri is.
    """

    latest: dict[str, str | None]
    deleted: frozenset[str]  # uris of collectable posts that were deleted
    opted_out: frozenset[str]  # collectable, not deleted, but no copy passes the consent gates
    hidden: int  # statuses published that public feeds never show
    published: int  # every status published, hidden or not
    invalid: dict[str, str] = field(default_factory=dict)  # uri -> marker: must be rejected
    coerced: dict[str, tuple[str, ...]] = field(default_factory=dict)  # uri -> fields
    shaped: dict[str, str] = field(default_factory=dict)  # uri -> shape (pleroma, ...)
    # Made after the fact (revalidation): uris of posts made non-public since they were
    # published (`restrict`), not in `latest`; accounts deleted or suspended (`remove_account`:
    # acct user@host -> "deleted" | "suspended"), their posts in `deleted`.
    restricted: frozenset[str] = frozenset()
    gone_accounts: dict[str, str] = field(default_factory=dict)
    gates: dict[str, int] = field(default_factory=dict)  # consent gate -> copies it skips

    @property
    def uris(self) -> frozenset[str]:
        return frozenset(self.latest)

    def verdict(self, uri: str) -> str:
        """GOOD (the lake's `posts` holds it once), INVALID (its `rejects` hold it) or
        SKIPPED (neither is required: hidden, deleted, opted out, or not collected)."""
        if uri in self.latest:
            return GOOD
        return INVALID if uri in self.invalid else SKIPPED

    def to_json(self) -> dict[str, Any]:
        return {
            "latest": self.latest,
            "deleted": sorted(self.deleted),
            "opted_out": sorted(self.opted_out),
            "hidden": self.hidden,
            "published": self.published,
            "invalid": self.invalid,
            "coerced": {uri: list(fields) for uri, fields in self.coerced.items()},
            "shaped": self.shaped,
            "restricted": sorted(self.restricted),
            "gone_accounts": self.gone_accounts,
        }


class Fediverse:
    """`instances` simulated Mastodon servers on loopback, fed by a seeded workload.

    `settings`: one `InstanceSettings` for all (each instance gets a copy) or one per
    instance. `federation`: how many other simulated instances each post reaches.
    `retention`: how many recent posts keep their content in memory (older ones leave the REST
    timelines but stay in the truth). Extra keyword arguments go to `Workload`.

    `quotes`: the share of posts that quote an earlier public post (Mastodon 4.4+ `quote`,
    with the `quote-inline` fallback paragraph; a tenth pending or revoked), drawn from a
    random sequence of their own. `SimPost.quoted`, `quote_state` and `quote_uri` are the
    truth; so are a draft's `mentions` and `reply` (a reply to another account mentions it
    first and names its id) and an author's flags (`Author.locked`, `group`, `moved_to`...).

    `delays`: federation delays, like relays that forward with a fixed delay: seconds from a
    post's creation at its origin (which sets `created_at`) until its copy appears on a target
    instance. A mapping of target index, or (origin index or None for a virtual origin, target
    index), to seconds (a pair before its target; missing: 0), or a function (origin, target)
    -> seconds. The origin's own copy is never delayed; a copy deleted on its way never
    arrives, one edited on its way arrives edited. `arrivals(post)` records when each copy
    appeared; `in_flight` counts the copies on their way (delays need the fediverse's loop).

    `hostile`: the share of public statuses served mutated (invalid, coerced or shaped like
    another server; see `tootlake.simulate.hostile`), chosen from the seed.
    `hostile_instances`: misbehaving instances added after the `instances` ordinary ones
    (kinds from `INSTANCE_KINDS`: "flood", "stall", "huge", "huge_document", "bad_document"),
    with the settings of the first ordinary instance otherwise, or `InstanceSettings` with
    `misbehave` set. Ordinary posts never federate to them; only a flood publishes (its own
    posts, while the publisher runs).
    """

    def __init__(
        self,
        instances: int = 3,
        *,
        settings: InstanceSettings | Sequence[InstanceSettings] | None = None,
        seed: int = 0,
        federation: int = 2,
        bind: str = "127.0.0.1",
        port_base: int | None = None,
        retention: int = 100_000,
        workload: Workload | None = None,
        hostile: float = 0.0,
        hostile_instances: Sequence[str | InstanceSettings] = (),
        quotes: float = 0.05,
        delays: Delays | None = None,
        **workload_options: Any,
    ) -> None:
        if isinstance(settings, Sequence):
            if len(settings) != instances:
                raise ValueError(f"Got {len(settings)} settings for {instances} instances.")
            self._settings = list(settings)
        else:
            base = settings or InstanceSettings()
            self._settings = [
                replace(base, live_feeds=dict(base.live_feeds)) for _ in range(instances)
            ]
        self.ordinary = len(self._settings)  # instances 0..ordinary-1; the hostile ones follow
        for kind in hostile_instances:
            if isinstance(kind, InstanceSettings) and kind.misbehave is not None:
                hostile_settings = kind
            elif kind in INSTANCE_KINDS:
                base = self._settings[0] if self._settings else InstanceSettings()
                hostile_settings = replace(base, misbehave=kind, live_feeds=dict(base.live_feeds))
            else:
                raise ValueError(
                    f"Invalid hostile instance: {kind!r}. Allowed values: "
                    f"{', '.join(INSTANCE_KINDS)}, or InstanceSettings with misbehave set."
                )
            if hostile_settings.misbehave == "flood":
                # Its REST timeline must cover what a reconnecting client missed.
                size = max(hostile_settings.timeline_size, 50_000)
                hostile_settings = replace(hostile_settings, timeline_size=size)
            self._settings.append(hostile_settings)
        self._picker = HostilePicker(hostile, seed)
        if not ipaddress.ip_address(bind).is_loopback:
            # Simulated servers are test fixtures: never reachable from another machine.
            raise ValueError(f"Invalid bind address {bind!r}: use a loopback address (127.0.0.1).")
        self.seed = seed
        self.federation = federation
        self.bind = bind
        self.port_base = port_base
        self.retention = retention
        self.renderer = Renderer()
        self.instances: list[Instance] = []
        self.workload = workload
        self._workload_options = workload_options
        self._rng = random.Random(f"tootlake-fediverse/{seed}")
        # Quotes draw from a sequence of their own: the rest of the fediverse's is unchanged.
        self.quotes = quotes
        self._quote_rng = random.Random(f"tootlake-fediverse/quotes/{seed}")
        self._delay = _delay_function(delays, len(self._settings))
        self._in_flight: dict[int, asyncio.TimerHandle] = {}
        self._in_flight_ids = itertools.count()
        self._arrived: dict[str, dict[int, float]] = {}  # uri -> index -> time, delayed copies
        self._posts: dict[str, SimPost] = {}
        self.directory = Directory(self._posts, self.renderer)  # lookups by id (revalidation)
        self._restricted: set[str] = set()  # uris made non-public after publishing
        self._gone_accounts: dict[str, str] = {}  # acct -> deleted | suspended
        self._alive: deque[SimPost] = deque()
        self._recent: list[SimPost] = []  # candidates for edits and deletes (a ring)
        self._recent_at = 0
        self._last_by_author: dict[int, SimPost] = {}
        self._publisher: asyncio.Task[None] | None = None
        self._floods: list[asyncio.Task[None]] = []
        self.published = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Fediverse:
        n = len(self._settings)
        for i, settings in enumerate(self._settings):
            port = self.port_base + i if self.port_base else 0
            streaming_port = self.port_base + n + i if self.port_base else 0
            self.instances.append(
                Instance(
                    i,
                    settings,
                    self.renderer,
                    bind=self.bind,
                    port=port,
                    streaming_port=streaming_port,
                )
            )
        # Started in chunks: a thousand instances come up in a second or two.
        for inst in self.instances:
            inst.directory = self.directory
        for chunk in range(0, n, 64):
            await asyncio.gather(*(inst.start() for inst in self.instances[chunk : chunk + 64]))
        if self.workload is None:
            # Ordinary instances only: the workload does not depend on the hostile ones.
            self.workload = Workload(
                self.hosts[: self.ordinary], seed=self.seed, **self._workload_options
            )
        return self

    async def close(self) -> None:
        await self.stop_publishing()
        for handle in self._in_flight.values():
            handle.cancel()
        self._in_flight.clear()
        for inst in self.instances:
            await inst.stop()

    async def __aenter__(self) -> Fediverse:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def urls(self) -> list[str]:
        """Web URLs of the instances, e.g. http://127.0.0.1:41123."""
        return [inst.url for inst in self.instances]

    @property
    def hosts(self) -> list[str]:
        """Instance hosts ("127.0.0.1:PORT"): the `observed_on`/`origin` a collector sees."""
        return [inst.host for inst in self.instances]

    @property
    def tokens(self) -> dict[str, str | None]:
        """host -> the token its streaming needs (None: any token works)."""
        return {inst.host: inst.settings.token for inst in self.instances}

    @property
    def hostile_rate(self) -> float:
        """The share of public statuses served mutated."""
        return self._picker.rate

    @property
    def misbehaving(self) -> list[Instance]:
        """The hostile instances (flood, stall, huge, ...), after the ordinary ones."""
        return self.instances[self.ordinary :]

    def instance(self, key: int | str) -> Instance:
        """An instance by index, host or URL."""
        if isinstance(key, int):
            return self.instances[key]
        for inst in self.instances:
            if key in (inst.host, inst.url):
                return inst
        raise KeyError(f"No simulated instance {key!r}; known: {', '.join(self.hosts)}")

    def _select(self, instances: Iterable[int | str] | None) -> list[Instance]:
        return list(self.instances) if instances is None else [self.instance(k) for k in instances]

    # -- publishing --------------------------------------------------------------------------

    def post(
        self,
        draft: Draft | None = None,
        *,
        origin: int | str | None = None,
        targets: Sequence[int] | None = None,
        public: bool = False,
        hostile: Sequence[str] | None = None,
    ) -> SimPost:
        """Publish one status now and return it.

        `draft`: what to post (default: the workload's next). `origin`: author it on this
        simulated instance (index or host) with one of its accounts. `targets`: the indices of
        the instances it federates to (default: `federation` random others). `public`: make it
        a status public feeds show (public, not a boost, not a reply to someone else).
        `hostile`: mutations to serve it with (names from `hostile.MUTATIONS`; empty: none);
        None: as the `hostile` rate decides for a public post of an author who did not opt out.
        """
        return self._post(draft, origin, targets, public, hostile, churn=True)

    def _post(
        self,
        draft: Draft | None,
        origin: int | str | None,
        targets: Sequence[int] | None,
        public: bool,
        hostile: Sequence[str] | None,
        churn: bool,
    ) -> SimPost:
        workload = self.workload
        assert workload is not None, "start() the fediverse first"
        if draft is None:
            if origin is not None:
                inst = self.instance(origin)
                draft = workload.draft(self._rng.choice(workload.authors(inst.index, inst.host)))
            else:
                draft = workload.draft()
        if public and not draft.streamable:
            draft = replace(draft, visibility="public", reblog=False, reply=None)
        now = time.time()
        author = draft.author
        home = self.instances[author.home_index] if author.home_index is not None else None
        origin_id = home.ids.next(now) if home is not None else None
        post = self.renderer.new_post(draft, now, origin_id)
        if hostile is not None:
            post.hostile = self._picker.make(hostile, now) if hostile else None
        elif self._picker.rate and draft.streamable and not author.opted_out:
            post.hostile = self._picker.pick(now)
        if draft.reply == "self":
            post.parent = self._last_by_author.get(author.key)
        if self.quotes and self._recent and not draft.reblog:
            rng = self._quote_rng
            if rng.random() < self.quotes:
                post.quoted = rng.choice(self._recent)
                post.quote_state = (
                    "accepted" if rng.random() < 0.9 else rng.choice(("pending", "revoked"))
                )
        self._last_by_author[author.key] = post
        if targets is None:
            targets = self._targets(author.home_index)
        if home is not None:
            home.receive(post, origin_id)
        delay = self._delay
        for index in targets:
            if index == author.home_index:
                continue
            seconds = delay(author.home_index, index) if delay is not None else 0.0
            if seconds > 0:
                self._deliver_later(post, index, seconds)
            else:
                self.instances[index].receive(post)
        self._record(post, churn=churn and post.hostile is None)
        return post

    def _targets(self, home_index: int | None) -> list[int]:
        n = self.ordinary  # hostile instances get no federated posts
        k = min(self.federation, n - (home_index is not None and home_index < n))
        if home_index is None:
            k = max(k, 1)  # a virtual origin's post is only visible through its copies
        if k <= 0:
            return []
        picks: list[int] = []
        random = self._rng.random
        while len(picks) < k:  # cheaper than Random.sample for k << n
            index = int(random() * n)
            if index != home_index and index not in picks:
                picks.append(index)
        return picks

    def _deliver_later(self, post: SimPost, index: int, seconds: float) -> None:
        key = next(self._in_flight_ids)
        loop = asyncio.get_running_loop()  # federation delays need the fediverse's loop
        self._in_flight[key] = loop.call_later(seconds, self._deliver, key, post, index)

    def _deliver(self, key: int, post: SimPost, index: int) -> None:
        """A delayed copy arrives: in its latest version; never if deleted (or evicted)."""
        del self._in_flight[key]
        if post.deleted or post.draft is None:
            return
        self._arrived.setdefault(post.uri, {})[index] = time.time()
        self.instances[index].receive(post)

    @property
    def in_flight(self) -> int:
        """Delayed copies on their way (`delays`): wait for 0 before reading the truth."""
        return len(self._in_flight)

    def arrivals(self, post: SimPost | str) -> dict[str, float]:
        """host -> seconds from the post's creation at its origin until its copy appeared
        there, for every instance that has it: 0 on its origin and where it went undelayed,
        the measured time (at least the configured delay) where `delays` held it back."""
        post = self._resolve(post)
        late = self._arrived.get(post.uri, {})
        return {
            self.instances[i].host: late[i] - post.created if i in late else 0.0
            for i in post.copies
        }

    def _record(self, post: SimPost, churn: bool = True) -> None:
        """Keep the post for the truth; `churn`: the publisher may edit or delete it later
        (never a hostile post: its truth would depend on how a collector orders versions)."""
        self._posts[post.uri] = post
        self.published += 1
        self._alive.append(post)
        if len(self._alive) > self.retention:
            old = self._alive.popleft()
            old.draft = None  # keep the identity for the truth, free the content
        if post.streamable and churn:
            if len(self._recent) < 10_000:
                self._recent.append(post)
            else:
                self._recent[self._recent_at] = post
                self._recent_at = (self._recent_at + 1) % len(self._recent)

    def _resolve(self, post: SimPost | str) -> SimPost:
        found = self._posts.get(post) if isinstance(post, str) else post
        if found is None:
            raise KeyError(f"No published post {post!r}")
        return found

    def edit(self, post: SimPost | str, draft: Draft | None = None) -> SimPost:
        """Publish a new version of a post (`status.update` wherever it lives)."""
        post = self._resolve(post)
        if post.deleted or post.draft is None:
            raise ValueError(f"Cannot edit {post.uri}: deleted or evicted")
        assert self.workload is not None
        self.renderer.update(post, draft or self.workload.edited(post.draft), time.time())
        for index in post.copies:
            self.instances[index].edited(post)
        return post

    def delete(self, post: SimPost | str) -> None:
        """Delete a post: every instance that had it sends `delete` with its own id."""
        post = self._resolve(post)
        if post.deleted:
            return
        post.deleted = True
        for index in post.copies:
            self.instances[index].deleted(post)

    # -- after the fact: what only revalidation finds when no stream carried it -------------

    def restrict(self, post: SimPost | str, visibility: str = "unlisted") -> SimPost:
        """Make a public post `unlisted`, `private` or `direct` (no event on any stream, as
        no server announces it): it leaves the timelines; `GET /api/v1/statuses/:id` shows
        an unlisted one as such and answers 404 for the others. Recorded in the truth's
        `restricted`."""
        post = self._resolve(post)
        if visibility not in ("unlisted", "private", "direct"):
            raise ValueError(f"Invalid visibility {visibility!r}: unlisted, private or direct.")
        if post.deleted or post.draft is None:
            raise ValueError(f"Cannot restrict {post.uri}: deleted or evicted")
        post.draft = replace(post.draft, visibility=visibility)
        post.streamable = False
        self._restricted.add(post.uri)
        return post

    def remove_account(self, acct: str, *, suspend: bool = False) -> list[SimPost]:
        """Delete (or `suspend`) the account `acct` (user@host) and return its posts still
        in memory (`retention`). Deleting sends a `delete` for each post wherever it lives,
        as Mastodon does for a deleted account; suspending sends nothing. Either way its
        posts leave the timelines, `GET /api/v1/statuses/:id` answers 404 for them and
        `GET /api/v1/accounts/:id` answers 404 (deleted) or `suspended: true`; the truth
        lists the account in `gone_accounts` and its posts in `deleted`."""
        posts = [
            post
            for post in self._posts.values()
            if post.draft is not None
            and f"{post.draft.author.username}@{post.draft.author.home}" == acct
        ]
        if not posts:
            raise KeyError(f"No account {acct!r} with a post in memory")
        author = posts[0].draft.author if posts[0].draft else None
        assert author is not None
        self.directory.gone[author.key] = SUSPENDED if suspend else DELETED
        self._gone_accounts[acct] = SUSPENDED if suspend else DELETED
        for post in posts:
            if suspend:
                post.deleted = True  # hidden, not announced: nothing goes out on the streams
            else:
                self.delete(post)
        return posts

    def posts(self, origin: int | str | None = None) -> list[SimPost]:
        """Every post published so far (in order), or those authored on instance `origin`."""
        if origin is None:
            return list(self._posts.values())
        index = self.instance(origin).index
        return [post for post in self._posts.values() if post.origin_index == index]

    def copies(self, post: SimPost | str) -> dict[str, str]:
        """host -> local id of a post on every instance that has it."""
        return {
            self.instances[i].host: str(local_id)
            for i, local_id in self._resolve(post).copies.items()
        }

    def _churn(self, edits: float, deletes: float) -> None:
        """Maybe edit and maybe delete a recent public post, at the given rates per post."""
        rng = self._rng
        if edits and self._recent and rng.random() < edits:
            post = rng.choice(self._recent)
            if not post.deleted and post.draft is not None:
                self.edit(post)
        if deletes and self._recent and rng.random() < deletes:
            post = rng.choice(self._recent)
            if not post.deleted:
                self.delete(post)

    async def publish(
        self, n: int, *, rate: float | None = None, edits: float = 0.0, deletes: float = 0.0
    ) -> list[SimPost]:
        """Publish `n` posts at `rate` posts/s (None: as fast as possible) and return them.

        `edits` and `deletes`: the chance, per post, of also editing or deleting a recent one.
        """
        out: list[SimPost] = []
        await self._run(n, rate, edits, deletes, out)
        return out

    def start_publishing(
        self, rate: float, *, edits: float = 0.02, deletes: float = 0.01, n: int | None = None
    ) -> None:
        """Publish in the background at `rate` posts/s until `stop_publishing()` (or `n` posts).

        Flooding instances (`hostile_instances`) flood meanwhile, until `stop_publishing()`.
        """
        if self._publisher is not None and not self._publisher.done():
            raise RuntimeError("The publisher is already running.")
        self._publisher = asyncio.create_task(self._run(n, rate, edits, deletes, None))
        self._floods = [
            asyncio.create_task(self._flood(inst))
            for inst in self.misbehaving
            if inst.settings.misbehave == "flood"
        ]

    async def stop_publishing(self) -> None:
        tasks = [self._publisher, *self._floods] if self._publisher else self._floods
        self._publisher, self._floods = None, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _flood(self, inst: Instance) -> None:
        """Publish valid public posts on `inst` as fast as its streaming clients read them.

        Only while a client listens to a public stream, and only while every such client has
        less than `_FLOOD_BACKLOG` bytes waiting: nothing is published that a live connection
        is not about to carry. `flood_rate` caps the rate. A workload of its own keeps the
        ordinary publisher's sequence (and so its hostile statuses) independent of the flood.
        """
        workload = Workload([inst.host], seed=self.seed, virtual_share=0.0)
        authors = workload.authors(inst.index, inst.host)
        rng = random.Random(f"tootlake-flood/{self.seed}/{inst.index}")
        loop = asyncio.get_running_loop()
        rate = inst.settings.flood_rate
        allowance, last = 0.0, loop.time()
        while True:
            now = loop.time()
            if rate:
                allowance = min(allowance + (now - last) * rate, max(1.0, rate / 20))
            last = now
            if not inst.listened(_FLOOD_BACKLOG):
                await asyncio.sleep(0.005)
                continue
            batch = _FLOOD_BATCH if not rate else min(_FLOOD_BATCH, int(allowance))
            if batch <= 0:
                await asyncio.sleep(max(0.002, (1 - allowance) / rate if rate else 0.0))
                continue
            allowance -= batch
            for _ in range(batch):
                draft = workload.draft(rng.choice(authors))
                self._post(draft, None, (), True, (), churn=False)
            await asyncio.sleep(0)  # let the writers flush

    async def _run(
        self,
        n: int | None,
        rate: float | None,
        edits: float,
        deletes: float,
        out: list[SimPost] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0
        while n is None or done < n:
            if rate:
                due = int((loop.time() - start) * rate) + 1 - done
                if due <= 0:
                    # Sleep at least 10 ms: at thousands of posts/s they go out in batches,
                    # so each connection's writer flushes many events in one write.
                    await asyncio.sleep(max(0.01, (done + 1) / rate - (loop.time() - start)))
                    continue
            else:
                due = 500
            batch = min(due, 2000) if n is None else min(due, 2000, n - done)
            for _ in range(batch):
                post = self.post()
                if out is not None:
                    out.append(post)
                if edits or deletes:
                    self._churn(edits, deletes)
            done += batch
            await asyncio.sleep(0)  # let the writers flush

    # -- ground truth ------------------------------------------------------------------------

    def truth(
        self,
        hosts: Iterable[str] | None = None,
        *,
        include_opted_out: bool = False,
        consent: Any = None,
    ) -> Truth:
        """What a collector of `hosts` (default: every instance) should have in its lake.

        A post counts when some copy of it is on a collected instance whose live feed for it
        (local there, or remote) is not disabled: read at call time from the settings.

        `consent`: the consent gates of the collector (a `tootlake.record.Consent`: its `mode`,
        `skip_locked`, `skip_bots`; default the opt-out mode, "none" with `include_opted_out`),
        judged from the simulator's own authors: a post counts when every collected copy
        passes every gate as that copy shows its author (`noindex` is on the home instance's
        copy only, and a collector that sees it there removes the post it may have written
        from another copy); others are in `opted_out`. `gates` counts the copies that failed,
        per gate: what a collector streaming each copy once (no edits, no hostility) counts
        as skipped, at least (a copy from elsewhere after the home one is skipped too).
        """
        mode = getattr(consent, "mode", "none" if include_opted_out else "opt-out")
        skip_locked = bool(getattr(consent, "skip_locked", False))
        skip_bots = bool(getattr(consent, "skip_bots", False))
        gates: dict[str, int] = {}
        wanted = None if hosts is None else {self.instance(h).index for h in hosts}
        open_halves = [
            (
                inst.settings.live_feeds["local"] != "disabled",
                inst.settings.live_feeds["remote"] != "disabled",
            )
            for inst in self.instances
        ]
        latest: dict[str, str | None] = {}
        deleted: set[str] = set()
        opted_out: set[str] = set()
        invalid: dict[str, str] = {}
        coerced: dict[str, tuple[str, ...]] = {}
        shaped: dict[str, str] = {}
        hidden = 0
        restricted = self._restricted
        for uri, post in self._posts.items():
            if not post.streamable:
                hidden += uri not in restricted  # public once, then restricted: not hidden
                continue
            collected = [
                i
                for i in post.copies
                if (wanted is None or i in wanted)
                and open_halves[i][0 if i == post.origin_index else 1]
            ]
            if not collected:
                continue
            failed = [
                _gate(post.author, i == post.origin_index, mode, skip_locked, skip_bots)
                for i in collected
            ]
            for gate in failed:
                if gate is not None:
                    gates[gate] = gates.get(gate, 0) + 1
            hostility = post.hostile
            if hostility is not None and hostility.verdict == INVALID:
                invalid[uri] = hostility.marker  # served, so rejected, even if deleted since
            elif post.deleted:
                deleted.add(uri)
            elif any(gate is not None for gate in failed) or (
                # an opt-out made after the post was published (revalidation finds it)
                post.opted_out and not post.author.opted_out and mode != "none"
            ):
                opted_out.add(uri)
            elif hostility is None:
                latest[uri] = post.edited_at
            else:
                latest[uri] = post.edited_at if hostility.keeps_edited_at else None
                if hostility.coerced:
                    coerced[uri] = hostility.coerced
                if hostility.shape:
                    shaped[uri] = hostility.shape
        return Truth(
            latest,
            frozenset(deleted),
            frozenset(opted_out),
            hidden,
            len(self._posts),
            invalid,
            coerced,
            shaped,
            frozenset(restricted),
            dict(self._gone_accounts),
            gates,
        )

    # -- faults on many instances ------------------------------------------------------------

    def cut(self, instances: Iterable[int | str] | None = None, *, mid_event: bool = False) -> int:
        """Drop the live connections of `instances` (default all); see `Instance.cut`."""
        return sum(inst.cut(mid_event=mid_event) for inst in self._select(instances))

    def stall(
        self, instances: Iterable[int | str] | None = None, *, seconds: float | None = None
    ) -> None:
        for inst in self._select(instances):
            inst.stall(seconds=seconds)

    def unstall(self, instances: Iterable[int | str] | None = None) -> None:
        for inst in self._select(instances):
            inst.unstall()

    def fail(
        self,
        status: int | str = 503,
        count: int | None = 1,
        *,
        instances: Iterable[int | str] | None = None,
        path: str = "/",
    ) -> None:
        for inst in self._select(instances):
            inst.fail(status, count, path=path)

    def clear_faults(self) -> None:
        for inst in self.instances:
            inst.clear_faults()


Delays = Mapping[int | tuple[int | None, int], float] | Callable[[int | None, int], float]


def _delay_function(
    delays: Delays | None, instances: int
) -> Callable[[int | None, int], float] | None:
    """(origin index or None, target index) -> seconds, checked; None: no delays at all."""
    if delays is None:
        return None
    if callable(delays):
        fn = delays
    else:
        table = dict(delays)
        for key, seconds in table.items():
            origin, target = key if isinstance(key, tuple) else (None, key)
            if not all(i is None or 0 <= i < instances for i in (origin, target)):
                raise ValueError(
                    f"Invalid federation delay key {key!r}: instance indices are 0 to "
                    f"{instances - 1} (a tuple is (origin, target))."
                )
            _check_delay(key, seconds)

        def fn(origin: int | None, target: int) -> float:
            seconds = table.get((origin, target))
            return table.get(target, 0.0) if seconds is None else seconds

    def checked(origin: int | None, target: int) -> float:
        return _check_delay((origin, target), fn(origin, target))

    return checked


def _check_delay(key: object, seconds: float) -> float:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(
            f"Invalid federation delay for {key!r}: {seconds!r}. Use a number of seconds >= 0."
        )
    return float(seconds)


_FLOOD_BATCH = 100  # posts a flood publishes between two looks at its clients
_FLOOD_BACKLOG = 256 << 10  # bytes a flood's client may have waiting before it pauses


class FediverseThread:
    """A `Fediverse` on an event loop of its own thread, for synchronous code.

    with FediverseThread(instances=2, seed=1) as sim:
        client = Mastodon(api_base_url=sim.fed.urls[0], access_token="t")
        sim.call(sim.fed.post)                       # any method, run on the loop
        sim.call(sim.fed.publish, 100, rate=50)      # coroutines are awaited
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tootlake-fediverse", daemon=True
        )
        self._fed: Fediverse | None = None

    @property
    def fed(self) -> Fediverse:
        assert self._fed is not None, "use FediverseThread as a context manager"
        return self._fed

    def call(
        self, fn: Callable[..., Any], *args: Any, timeout: float | None = 60, **kwargs: Any
    ) -> Any:
        """Run `fn(*args, **kwargs)` on the fediverse's loop (awaiting it if it is a coroutine)."""

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def __enter__(self) -> FediverseThread:
        self._thread.start()
        self._fed = self.call(lambda: Fediverse(*self._args, **self._kwargs).start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fed is not None:
                self.call(self._fed.close)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


def _gate(
    author: Any, home_copy: bool, mode: str, skip_locked: bool, skip_bots: bool
) -> str | None:
    """The consent gate a copy of a post by `author` fails (`home_copy`: the copy on its home
    instance), as docs/research.md defines the gates; None when it passes."""
    if mode != "none":
        if home_copy and author.noindex:  # Mastodon serializes noindex for local accounts only
            return "noindex"
        if author.opt_out_tag:
            return "opt_out_tag"
    if mode == "opt-in":
        if not author.indexable:
            return "not_indexable"
        if author.locked:
            return "locked"
    elif skip_locked and author.locked:
        return "locked"
    if skip_bots and author.bot:
        return "bot"
    return None
