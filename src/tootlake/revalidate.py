"""`revalidate()`: the deletes a collection missed, found by asking each instance again.

    from tootlake.revalidate import revalidate
    result = revalidate("./lake", max_requests=5000)

Streams carry deletes only while connected, and polling carries none. This asks the instance
each post of `posts` was seen on for it again, by the id that instance gave it (`GET
/api/v1/statuses/:id`, with the instance's token when one is known), posts not checked for
`older_than` first (oldest first), and:

  * 404/410: the post is deleted; when its author's account is gone too (404/410) or
    suspended (`GET /api/v1/accounts/:id`, asked once per account), every post of that
    account is;
  * 200: the status as the instance has it now, validated at the edge
    (`tootlake.record.decode_status`) and judged by the consent rules the collector applies
    (`tootlake.record.skip_reason`): no longer public removes the post, an author who now
    opts out (noindex, an opt-out tag) removes every post of theirs;
  * anything else (5xx, a timeout, 401/403/422, a body that is not a status, an id that now
    names another post): an error, counted; the post is asked again by the next run, never
    removed. An instance failing `MAX_ERRORS_IN_A_ROW` times in a row is left for this run.

Removals are written to the `deletes` table as the collector writes deletes (with the uri),
every `FLUSH_EVERY` checks, before the checks themselves (`tootlake.lake.checks`): a run
killed between the two asks again; never is a post marked checked whose delete is not
durable. At the end `posts` is merged (`tootlake.pipeline.merge_lake`) and an audit row
written. docs/collect.md, "Deletes that were missed", has the policy and its limits.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tootlake.errors import ConfigError, LakeError
from tootlake.lake import tables
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.checks import ERROR, Check, append_checks
from tootlake.lake.layout import AUDIT
from tootlake.lake.maintenance import parse_duration
from tootlake.lake.reader import check_lake, open_lake
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import merge_lake
from tootlake.record import Consent, Delete, Rejection, ValidStatus
from tootlake.record.consent import NONE, OPT_IN, OPT_OUT
from tootlake.settings import Settings
from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.lookup import (
    GONE,
    SUSPENDED,
    InstanceLookups,
    LookupOptions,
    OutOfRequests,
    lookup_session,
    pause,
)
from tootlake.sources.mastodon import (
    Backoff,
    InstanceError,
    RateLimited,
    normalize_instance,
    probe,
)

__all__ = [
    "DEFAULT_OLDER_THAN",
    "PseudonymisedLake",
    "RevalidateOptions",
    "RevalidateResult",
    "RevalidateStats",
    "lake_consent",
    "revalidate",
    "verdict",
]

log = logging.getLogger(__name__)

# Posts are due once their last check is this old: run revalidate daily and each post is
# asked again within 7 days (what Mastodon's FASP rules ask of providers: weekly).
DEFAULT_OLDER_THAN = "6d"
FLUSH_EVERY = 200  # checks between two writes of deletes and checks...
FLUSH_SECONDS = 10.0  # ...or seconds
MAX_ERRORS_IN_A_ROW = 5  # errors in a row that leave an instance for the rest of the run
CHUNK = 500  # due posts of an instance read from DuckDB at a time
# Skips that say something of the post itself; every other gate is about its author.
POST_REASONS = frozenset({"reblog", "not_public", "invalid"})
# Outcomes of a check (the `checks` table's `outcome`), besides the gates' names and ERROR.
PRESENT, DELETED, ACCOUNT_GONE = "present", "deleted", "account_gone"
# Gone from an instance that is not the author's home: its cache may have dropped the copy
# (content retention, a domain block), so it is removed as such, not counted as a delete.
GONE_FROM_OBSERVER = "gone_from_observer"
UNUSABLE = "unusable"  # a 200 that cannot be trusted: checked as an error


class PseudonymisedLake(ConfigError):
    """A pseudonymised lake holds no id an instance knows: it cannot be revalidated."""


@dataclass(frozen=True)
class RevalidateOptions:
    lookups: LookupOptions = field(default_factory=LookupOptions)
    concurrency: int = 16  # instances asked at once (each one request at a time)
    max_errors_in_a_row: int = MAX_ERRORS_IN_A_ROW
    backoff_base: float = 1.0  # between errors on one instance: 0.5-1 s, 1-2, 2-4, 4-8...
    backoff_cap: float = 15.0
    flush_every: int = FLUSH_EVERY
    flush_seconds: float = FLUSH_SECONDS


@dataclass
class RevalidateStats:
    """What a run did. `removed`: posts removed by reason (`deleted`, `account_gone`,
    `not_public`, the author's opt-out gate...), each counted once."""

    due: int = 0  # posts due when the run started (never checked, or not for older_than)
    checked: int = 0  # posts an instance answered for (present or not)
    present: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    gone_accounts: int = 0  # accounts found deleted or suspended
    opted_out_accounts: int = 0  # authors found opted out
    errors: int = 0  # lookups that said nothing: asked again next run
    # gone answers of instances that showed no post as it is in the run: asked again
    unconfirmed: int = 0
    requests: int = 0  # lookups sent (statuses and accounts, 429s included)
    rate_limited: int = 0  # 429 answers
    rate_wait: float = 0.0  # seconds waited for them
    remaining: int = 0  # due posts still due at the end
    unplaced: int = 0  # posts without an instance (replayed without --observed-on)
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def deletes(self) -> int:
        return sum(self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "due": self.due,
            "checked": self.checked,
            "present": self.present,
            "removed": dict(self.removed),
            "deletes": self.deletes,
            "gone_accounts": self.gone_accounts,
            "opted_out_accounts": self.opted_out_accounts,
            "errors": self.errors,
            "unconfirmed": self.unconfirmed,
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "rate_wait": round(self.rate_wait, 3),
            "remaining": self.remaining,
            "unplaced": self.unplaced,
            "seconds": round(self.elapsed, 3),
        }


@dataclass
class RevalidateResult:
    stats: RevalidateStats
    # host -> {due, checked, errors, status, detail}: how each instance's share went
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.as_dict(), "instances": self.instances}


def _is_pseudonymised(lake: str) -> bool:
    """True when the lake is pseudonymised: its marker says so (`tootlake.lake.pseudonyms`),
    or a run recorded in its `audit` table pseudonymised what it wrote (the `pseudonymised`
    column, or a `key_id`). Such a lake holds keyed hashes, not the ids instances gave, so
    nothing in it can be looked up."""
    import pyarrow.compute as pc

    from tootlake.lake.pseudonyms import lake_key_id

    if lake_key_id(lake) is not None:
        return True
    dt = tables.load(lake, AUDIT)
    if dt is None:
        return False
    names = set(dt.schema().to_arrow().names)
    columns = [c for c in ("pseudonymised", "key_id") if c in names]
    if not columns:
        return False
    data = dt.to_pyarrow_table(columns=columns)
    flagged = "pseudonymised" in columns and bool(pc.any(data.column("pseudonymised")).as_py())
    keyed = "key_id" in columns and data.column("key_id").null_count < data.num_rows
    return flagged or keyed


# The posts due, ranked per instance, oldest first: never asked posts by when they were
# collected, asked ones by when they were last asked. An error is no check (the post stays
# due) but puts it at the back, so a few posts an instance cannot answer do not hold up the
# rest of it run after run.
_DUE = """
CREATE OR REPLACE TEMP TABLE _revalidate_due AS
WITH last AS (
    SELECT observed_on, id, max(checked_at) FILTER (WHERE outcome <> ?) AS checked_at,
           max(checked_at) AS asked_at  -- an error too: it goes to the back of the queue
    FROM checks GROUP BY observed_on, id
)
SELECT p.observed_on, p.id, p.uri, p.acct, p.account_id,
       row_number() OVER (
           PARTITION BY p.observed_on
           ORDER BY coalesce(l.asked_at, p.ingested_at), p.id
       ) AS n
FROM posts p LEFT JOIN last l ON p.observed_on = l.observed_on AND p.id = l.id
WHERE p.observed_on IS NOT NULL AND (l.checked_at IS NULL OR l.checked_at <= ?)
"""


def verdict(
    status: ValidStatus | Rejection | None,
    uri: str,
    gate: Callable[[ValidStatus], str | None],
) -> str:
    """What an instance's answer for the post `uri` means: DELETED when it is gone (None:
    404/410), PRESENT when it may stay, the name of the consent gate it now fails, or
    UNUSABLE: a body that is not a valid status (`Rejection`), or one that names another
    post (ids are per instance and never reused: the instance's mistake, or another server
    at that host). UNUSABLE never removes anything."""
    if status is None:
        return DELETED
    if isinstance(status, Rejection) or status.uri != uri:
        return UNUSABLE
    return gate(status) or PRESENT


@dataclass(frozen=True, slots=True)
class _Due:
    observed_on: str
    id: str
    uri: str
    acct: str
    account_id: str | None


class _Run:
    """One run's state: the lake connection, what to write, the accounts removed."""

    def __init__(
        self,
        lake: str,
        con: Any,
        stats: RevalidateStats,
        gate: Callable[[ValidStatus], str | None],
        options: RevalidateOptions,
        max_requests: int | None,
        stop: threading.Event,
    ) -> None:
        self.lake = lake
        self.con = con
        self.stats = stats
        self.gate = gate
        self.options = options
        self.max_requests = max_requests
        self.stop = stop
        self.writer = LakeWriter(lake)
        self.checks: list[Check] = []
        self.unwritten = 0  # checks since the last flush
        self.last_flush = time.monotonic()
        self.done: set[tuple[str, str]] = set()  # due posts settled in this run
        self.deleted: set[tuple[str | None, str]] = set()  # posts removed in this run
        self.accounts: dict[tuple[str, str], str] = {}  # (host, account id) -> state
        self.removed_accts: dict[str, str] = {}  # acct -> why all its posts went
        self.instances: dict[str, dict[str, Any]] = {}
        # An instance's "gone" answers are trusted once it has shown one post as it is (a
        # proxy's or a new server's 404 for everything removes nothing); until then they wait
        self.confirmed: set[str] = set()
        self.pending: dict[str, list[tuple[_Due, int | None]]] = {}

    # -- the request budget and writing -------------------------------------------------

    def take(self) -> bool:
        if self.stop.is_set():
            return False
        if self.max_requests is not None and self.stats.requests >= self.max_requests:
            return False
        self.stats.requests += 1
        return True

    def _delete(self, row: tuple[str | None, str, str | None], reason: str) -> None:
        observed_on, status_id, uri = row
        if (observed_on, status_id) in self.deleted:
            return  # one post, one delete: its account may go after it did
        self.deleted.add((observed_on, status_id))
        self.writer.add([Delete(observed_on, status_id, uri, datetime.now(UTC), reason)])
        self.stats.removed[reason] += 1

    def _check(self, due: _Due, outcome: str, http_status: int | None) -> None:
        self.checks.append(Check(due.observed_on, due.id, datetime.now(UTC), outcome, http_status))
        self.unwritten += 1
        if outcome != ERROR:
            self.done.add((due.observed_on, due.id))
        if (
            self.unwritten >= self.options.flush_every
            or time.monotonic() - self.last_flush >= self.options.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Deletes first, then the checks that found them (see the module docstring)."""
        self.writer.flush()
        append_checks(self.lake, self.checks)
        self.checks, self.unwritten, self.last_flush = [], 0, time.monotonic()

    def remove_account(self, acct: str, reason: str) -> None:
        """Every post of `acct` in the lake goes (its account is gone, or it opted out): asked
        of its home instance only, which speaks for the account (see `check`)."""
        if acct in self.removed_accts:
            return
        self.removed_accts[acct] = reason
        if reason == ACCOUNT_GONE:
            self.stats.gone_accounts += 1
        else:
            self.stats.opted_out_accounts += 1
        rows = self.con.execute(
            "SELECT observed_on, id, uri FROM posts WHERE acct = ?", [acct]
        ).fetchall()
        for row in rows:
            self._delete(row, reason)
        due = self.con.execute(
            "SELECT observed_on, id FROM _revalidate_due WHERE acct = ?", [acct]
        ).fetchall()
        self.done.update(due)  # settled: nothing left to ask of them
        log.info("%s: %s; its %d posts removed", acct, reason.replace("_", " "), len(rows))

    # -- one post --------------------------------------------------------------------------

    async def check(self, lookups: InstanceLookups, due: _Due) -> None:
        """Ask for one post and act on the answer; InstanceError and OutOfRequests pass."""
        answer = await lookups.status(due.id)
        row = (due.observed_on, due.id, due.uri)
        outcome = verdict(answer.status, due.uri, self.gate)
        if outcome == UNUSABLE:
            status = answer.status
            why = (
                f"not a status: {status.reason}"
                if isinstance(status, Rejection)
                else f"now {status.uri[:200]!r}, not {due.uri[:200]!r}"
                if status is not None
                else "?"
            )
            raise _Unusable(f"{due.observed_on}: status {due.id} is {why}")
        host = due.observed_on
        if outcome == DELETED:
            if host not in self.confirmed:  # trusted once this instance showed a post
                self.pending.setdefault(host, []).append((due, answer.http_status))
                return
            await self._gone(lookups, due, answer.http_status)
            return
        self.stats.checked += 1
        if outcome == PRESENT:
            self.stats.present += 1
        elif outcome in POST_REASONS:
            self._delete(row, outcome)
        elif _is_home(due):  # the author opted out since: all their posts go
            self.remove_account(due.acct, outcome)
        else:  # said by another instance than the author's: this copy goes
            self._delete(row, outcome)
        self._check(due, outcome, answer.http_status)
        if host not in self.confirmed:
            self.confirmed.add(host)
            for waiting, http_status in self.pending.pop(host, []):
                await self._gone(lookups, waiting, http_status)

    async def _gone(self, lookups: InstanceLookups, due: _Due, http_status: int | None) -> None:
        """The instance answered 404/410 for the post. Its home instance speaks for the
        author: the post is deleted, and when the account is gone or suspended too, every
        post of it. Another instance only says that its copy is gone."""
        self.stats.checked += 1
        row = (due.observed_on, due.id, due.uri)
        outcome = DELETED
        if not _is_home(due):
            outcome = GONE_FROM_OBSERVER
            self._delete(row, outcome)
        elif await self._account_gone(lookups, due):
            self.remove_account(due.acct, ACCOUNT_GONE)
            outcome = ACCOUNT_GONE
        else:
            self._delete(row, DELETED)
        self._check(due, outcome, http_status)

    async def _account_gone(self, lookups: InstanceLookups, due: _Due) -> bool:
        """Whether the account of a deleted post is gone or suspended; asked once per
        account; unknown (an error, no budget left) counts as there."""
        if not due.account_id:
            return False
        key = (due.observed_on, due.account_id)
        state = self.accounts.get(key)
        if state is None:
            try:
                state = await lookups.account(due.account_id)
            except OutOfRequests:
                return False  # the post's own answer stands
            except InstanceError as exc:
                log.info("%s: account %s unknown (%s)", due.observed_on, due.account_id, exc)
                return False
            self.accounts[key] = state
        return state in (GONE, SUSPENDED)

    # -- one instance ----------------------------------------------------------------------

    def _chunk(self, host: str, after: int) -> list[_Due]:
        rows = self.con.execute(
            "SELECT observed_on, id, uri, acct, account_id, n FROM _revalidate_due "
            "WHERE observed_on = ? AND n > ? ORDER BY n LIMIT ?",
            [host, after, CHUNK],
        ).fetchall()
        return [_Due(*row[:5]) for row in rows]

    async def instance(self, session: Any, spec: InstanceSpec, slots: asyncio.Semaphore) -> None:
        host = spec.host
        entry = self.instances[host]
        async with slots:
            if self.stop.is_set() or not self.take_peek():
                entry.update(status="not asked", detail="request budget spent")
                return
            try:
                # A lake's host may have changed hands: only a Mastodon API's 404 is a delete.
                await probe(session, spec.url, spec.token, max_body=self.options.lookups.max_body)
            except InstanceError as exc:
                entry.update(status="unreachable", detail=str(exc)[:500])
                log.warning("%s: not revalidated: %s", host, exc)
                return
            lookups = InstanceLookups(
                session,
                spec.url,
                spec.token,
                host=host,
                options=self.options.lookups,
                take=self.take,
                stop=self.stop,
            )
            entry.update(status="checking", detail="")
            try:
                await self._work(host, lookups, entry)
            finally:
                self.stats.rate_limited += lookups.rate_limited
                self.stats.rate_wait += lookups.rate_wait

    def take_peek(self) -> bool:
        return self.max_requests is None or self.stats.requests < self.max_requests

    async def _work(self, host: str, lookups: InstanceLookups, entry: dict[str, Any]) -> None:
        backoff = Backoff(self.options.backoff_base, self.options.backoff_cap)
        in_a_row = 0
        after = 0
        while True:
            chunk = self._chunk(host, after)
            if not chunk:
                waiting = len(self.pending.pop(host, []))
                if waiting:  # asked again by the next run, when the instance may show one
                    self.stats.unconfirmed += waiting
                    entry.update(
                        status="done",
                        detail=f"{waiting} gone answers not trusted: no post of this "
                        "instance was found as it is in this run",
                    )
                else:
                    entry.update(status="done")
                return
            after += len(chunk)
            for due in chunk:
                if (host, due.id) in self.done:
                    continue
                if due.acct in self.removed_accts:
                    self.done.add((host, due.id))
                    continue
                try:
                    await self.check(lookups, due)
                except OutOfRequests:
                    why = "stopped" if self.stop.is_set() else "request budget spent"
                    entry.update(status="stopped", detail=why)
                    return
                except RateLimited as exc:
                    entry.update(status="stopped", detail=str(exc)[:500])
                    log.warning("%s: %s", host, exc)
                    return
                except (InstanceError, _Unusable) as exc:
                    self.stats.errors += 1
                    entry["errors"] += 1
                    entry["detail"] = str(exc)[:500]
                    self._check(due, ERROR, None)
                    in_a_row += 1
                    if in_a_row >= self.options.max_errors_in_a_row:
                        entry.update(status="stopped", detail=f"{in_a_row} errors in a row: {exc}")
                        log.warning(
                            "%s: %d errors in a row, left for this run: %s", host, in_a_row, exc
                        )
                        return
                    await pause(backoff.next(), self.stop)
                    continue
                in_a_row = 0
                backoff.reset()
                entry["checked"] += 1


def _is_home(due: _Due) -> bool:
    """The instance the post was seen on is its author's home (their acct's host)."""
    return due.acct.rpartition("@")[2].lower() == (due.observed_on or "").lower()


class _Unusable(Exception):
    """A 200 that cannot be trusted as the post's state (not a status, another post)."""


def _specs(
    hosts: Sequence[str], instances: Sequence[InstanceSpec], settings: Settings | None
) -> tuple[dict[str, InstanceSpec], dict[str, str]]:
    """host -> the spec to ask it by: the one given (its URL and token), else https://host
    with the token the settings hold for it; and host -> why it cannot be asked."""
    given = {spec.host: spec for spec in instances}
    specs: dict[str, InstanceSpec] = {}
    bad: dict[str, str] = {}
    for host in hosts:
        if host in given:
            specs[host] = given[host]
            continue
        try:
            url = normalize_instance(host)
        except ConfigError as exc:
            bad[host] = str(exc)
            continue
        spec = InstanceSpec(url)
        if spec.host != host:  # a host that is not one (a path, user@...): never asked
            bad[host] = f"{host!r} is not an instance host"
            continue
        # by the exact host only: `token_for` also reads `mastodon_social` (an environment
        # variable's spelling) as mastodon.social, and a lake's hosts are data
        token = settings.tokens.get(host.lower()) if settings is not None else None
        specs[host] = InstanceSpec(url, token)
    return specs, bad


def revalidate(
    lake: str,
    *,
    instances: Sequence[InstanceSpec] = (),
    settings: Settings | None = None,
    max_requests: int | None = None,
    older_than: str | float | timedelta = DEFAULT_OLDER_THAN,
    include_opted_out: bool = False,
    consent: Consent | None = None,
    gate: Callable[[ValidStatus], str | None] | None = None,
    options: RevalidateOptions | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[RevalidateResult], None] | None = None,
) -> RevalidateResult:
    """Ask the instances again for the lake's posts that are due and remove what is gone
    (see the module docstring); return what was done.

    `instances`: how to reach some hosts (URL, token), e.g. `collector.read_instances`;
    other hosts of the lake are asked at https://HOST with the token `settings` hold for
    them. `max_requests`: lookups this run sends at most (a probe of each instance besides).
    `older_than`: a post checked more recently is not due (`7d`, `12h`, seconds; 0: every
    post). `consent`: the consent gates a post must still pass (`tootlake.record.Consent`);
    None: the strictest policy the lake was collected under (its collect and replay rows of
    the audit table: opt-in over opt-out over none, with every +skip-locked and
    +skip-bots), or the "none" mode with `include_opted_out`. `gate`: another policy (a
    status -> the gate it fails, or None). `stop`: set it to end early (what
    was found is written). A pseudonymised lake raises PseudonymisedLake."""
    started_at = datetime.now(UTC)
    options = options or RevalidateOptions()
    stop = stop or threading.Event()
    if max_requests is not None and max_requests < 0:
        raise ConfigError(f"Invalid --max-requests {max_requests}: 0 or more.")
    cutoff = started_at - parse_duration(older_than)
    stats = RevalidateStats()
    result = RevalidateResult(stats)
    has_tables = check_lake(lake)
    if _is_pseudonymised(lake):
        raise PseudonymisedLake(
            f"The lake {lake} is pseudonymised: its ids are keyed "
            "hashes, not the ids instances gave, so its posts cannot be looked up again. "
            "Revalidate a lake collected without --pseudonymize."
        )
    if not has_tables:
        return result  # nothing collected yet: nothing to ask about
    if consent is None:
        consent = Consent.of(include_opted_out=True) if include_opted_out else lake_consent(lake)
    if gate is None:
        gate = consent.gate
    con = open_lake(lake)
    try:
        con.execute(_DUE, [ERROR, cutoff])
        per_host = dict(
            con.execute(
                "SELECT observed_on, count(*) FROM _revalidate_due GROUP BY observed_on"
            ).fetchall()
        )
        (stats.unplaced,) = con.execute(
            "SELECT count(*) FROM posts WHERE observed_on IS NULL"
        ).fetchone() or (0,)
        stats.due = sum(per_host.values())
        specs, bad = _specs(sorted(per_host), instances, settings)
        run = _Run(lake, con, stats, gate, options, max_requests, stop)
        for host, count in per_host.items():
            run.instances[host] = {"due": count, "checked": 0, "errors": 0, "status": "waiting"}
        for host, why in bad.items():
            run.instances[host].update(status="unreachable", detail=why)
        result.instances = run.instances
        try:
            _run_async(lambda: _main(run, list(specs.values()), result, on_progress))
        finally:
            try:
                run.flush()
            finally:
                stats.unconfirmed += sum(len(waiting) for waiting in run.pending.values())
                stats.remaining = max(0, stats.due - len(run.done))
                stats.elapsed = time.monotonic() - stats.started
    finally:
        con.close()
    if stats.deletes:
        merge_lake(lake)
    _audit(lake, result, started_at, consent)
    log.info("revalidated %s: %s", lake, stats.as_dict())
    return result


def lake_consent(lake: str) -> Consent:
    """The consent policy the lake's posts were collected under: the `consent` of its collect
    and replay rows in the audit table, when they all say the same (the default opt-out
    mode when there are none). Rows that disagree are a ConfigError naming them: applying
    the strictest to every post would remove posts collected under another policy."""
    try:
        con = open_lake(lake)
        try:
            rows = con.execute(
                "SELECT DISTINCT consent FROM audit WHERE command IN ('collect', 'replay') "
                "AND consent IS NOT NULL ORDER BY 1"
            ).fetchall()
        finally:
            con.close()
    except LakeError:
        rows = []
    policies = [str(described) for (described,) in rows]
    if not policies:
        return Consent()
    if len(policies) > 1:
        raise ConfigError(
            f"The lake {lake} was collected under several consent policies "
            f"({', '.join(policies)}): say which to apply with --consent (and --skip-locked, "
            "--skip-bots, --include-opted-out)."
        )
    words = set(policies[0].split("+"))
    modes = [m for m in (OPT_IN, OPT_OUT, NONE) if m in words]
    return Consent(modes[0] if modes else OPT_OUT, "skip-locked" in words, "skip-bots" in words)


async def _main(
    run: _Run,
    specs: list[InstanceSpec],
    result: RevalidateResult,
    on_progress: Callable[[RevalidateResult], None] | None,
) -> None:
    slots = asyncio.Semaphore(max(1, run.options.concurrency))
    async with lookup_session(run.options.lookups) as session:
        tasks = [
            asyncio.create_task(run.instance(session, spec, slots), name=f"revalidate {spec.host}")
            for spec in specs
        ]
        pending = set(tasks)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            if on_progress is not None:
                result.stats.elapsed = time.monotonic() - result.stats.started
                result.stats.remaining = max(0, result.stats.due - len(run.done))
                on_progress(result)
        for task in tasks:
            task.result()  # a bug in a worker is raised, not lost


def _run_async(factory: Callable[[], Any]) -> Any:
    """asyncio.run(factory()), on a thread of its own when this one already runs a loop (a
    notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    out: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(factory()))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="tootlake-revalidate")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return out[0]


def _audit(lake: str, result: RevalidateResult, started_at: datetime, consent: Consent) -> None:
    stats = result.stats
    try:
        record_run(
            lake,
            AuditEntry(
                command="revalidate",
                started_at=started_at,
                consent=consent.describe(),
                instances=sorted(result.instances),
                instance_details=result.instances,
                deletes_revalidated=stats.deletes,
                stats=stats.as_dict(),
            ),
        )
    except LakeError as exc:  # record_run logs its own failures; this is belt and braces
        log.warning("Cannot write the audit row of this revalidate: %s", exc)
