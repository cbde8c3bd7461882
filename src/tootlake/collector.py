"""`collect()`: live posts of many Mastodon instances into the lake, and the instance tools
behind `tootlake instances` (`check_instances`, `discover_instances`).

    from tootlake.collector import collect, read_instances
    collect(read_instances(["mastodon.social"], settings), "./lake", duration=60)

The order of durability is the pipeline's: the sink writes a batch, then the acks advance the
cursors, then the cursors are saved. See docs/collect.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tootlake._gc import fewer_collections
from tootlake.errors import ConfigError, MissingDependency
from tootlake.lake.layout import is_remote, join
from tootlake.lake.writer import LakeWriter
from tootlake.pipeline import (
    PeriodicMerge,
    Recorder,
    RunStats,
    audit_run,
    merge_lake,
    run,
    save_run,
)
from tootlake.record import Consent
from tootlake.record.pseudonymize import Pseudonymizer
from tootlake.settings import Settings, check_private, token_for
from tootlake.sources.fleet import FleetOptions, FleetSource, InstanceSpec, Status
from tootlake.sources.mastodon import (
    USER_AGENT,
    AuthRequired,
    InstanceError,
    Mode,
    choose_mode,
    get_json,
    normalize_instance,
    probe,
)
from tootlake.sources.policy import InstancePolicy, Policy, fetch_instance_policy
from tootlake.sources.state import CollectorState

__all__ = [
    "CollectResult",
    "check_instances",
    "collect",
    "default_state_dir",
    "discover_instances",
    "read_instances",
    "read_instances_file",
    "read_token_file",
]

log = logging.getLogger(__name__)


def read_instances_file(path: str | Path) -> list[str]:
    """Instances of a file: one host or URL a line; `#` starts a comment."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the instances file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(
            f"Cannot read the instances file {path}: it is not UTF-8 text (one host or URL a line)"
        ) from None
    out = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            out.append(entry.split()[0])
    return out


def read_instances(names: Iterable[str], settings: Settings) -> list[InstanceSpec]:
    """Specs (base URL + token) of instances named as hosts or URLs, in order, once each."""
    specs: dict[str, InstanceSpec] = {}
    for name in names:
        url = normalize_instance(name)
        spec = InstanceSpec(url)
        specs.setdefault(spec.host, InstanceSpec(url, token_for(settings, spec.host)))
    return list(specs.values())


def _token_host(name: str) -> str | None:
    """The host of the INSTANCE part of an INSTANCE=TOKEN pair, None if it is not one."""
    try:
        return InstanceSpec(normalize_instance(name)).host
    except (ConfigError, ValueError):
        return None


def parse_token_flags(values: Iterable[str]) -> dict[str, str]:
    """`--token INSTANCE=TOKEN` values -> {host: token}. Errors never show the value (it may
    be a token); each use logs a warning, since any local user can read a command line."""
    tokens = {}
    for value in values:
        name, sep, token = value.partition("=")
        host = _token_host(name) if sep and name.strip() else None
        if host is None:
            raise ConfigError(
                "Invalid --token: expected INSTANCE=TOKEN, e.g. --token mastodon.social=abc123."
            )
        if not token.strip():
            raise ConfigError(
                f"The token for {host} given with --token is empty (an unset variable?)."
            )
        tokens[host] = token.strip()
    if tokens:
        log.warning(
            "--token puts a token on the command line, where other local users can read it "
            "(ps, /proc): prefer --token-file FILE (chmod 600) or TOOTLAKE_TOKEN_<HOST>."
        )
    return tokens


# `host=token  # a comment`: a comment starts at a `#` after whitespace (a token has none).
_TRAILING_COMMENT = re.compile(r"\s+#.*\Z", re.DOTALL)


def read_token_file(path: str | Path) -> dict[str, str]:
    """Tokens of a file of `INSTANCE=TOKEN` lines (blank lines and `#` comments allowed;
    INSTANCE a host or URL, TOKEN optionally in quotes) -> {host: token}. Warns when other
    users can read the file. Errors name the file and line, never the line's text."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"Cannot read the token file {path}: {why or exc}") from exc
    check_private(path, "token file")
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"The token file {path}, line {number}"
        name, sep, token = line.partition("=")
        host = _token_host(name) if sep and name.strip() else None
        if host is None:
            raise ConfigError(
                f"{where}: expected INSTANCE=TOKEN, e.g. mastodon.social=abc123 "
                "(the line is not shown: it may hold a token)."
            )
        token = _TRAILING_COMMENT.sub("", token.strip())
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            token = token[1:-1].strip()
        if not token:
            raise ConfigError(f"{where}: the token for {host} is empty.")
        if any(c.isspace() for c in token):
            raise ConfigError(f"{where}: the token for {host} contains whitespace.")
        if host in tokens:
            raise ConfigError(f"{where}: a second token for {host}.")
        tokens[host] = token
    return tokens


def default_state_dir(lake: str) -> str:
    if is_remote(lake):
        raise ConfigError(
            f"The lake {lake} is remote: give the collector a local --state DIR for its cursors."
        )
    return join(lake, "_tootlake", "state")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MB (Linux: VmHWM; None elsewhere).
    Not getrusage's ru_maxrss: Linux keeps that across exec, so it counts the forked copy
    of whatever process started this one."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


@dataclass
class CollectResult:
    stats: RunStats
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_dir: str = ""
    # (seconds since start, posts + edits so far, lag in seconds or None, events so far),
    # about once a second: rates over a part of the run (a benchmark's steady state)
    samples: list[tuple[float, int, float | None, int]] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # host -> why the policy denied it
    retention: dict[str, int] | None = None  # rows removed per table (with retain_days)

    def lag_summary(self) -> dict[str, float | None]:
        """Lag (now - created_at of the newest post handed out) over the run: median and max
        of each half, so a growing lag shows."""
        lags = [(t, lag) for t, _, lag, _ in self.samples if lag is not None]
        if not lags:
            return {}
        half = lags[-1][0] / 2
        out: dict[str, float | None] = {"lag_max": max(v for _, v in lags)}
        for name, part in (
            ("first_half", [v for t, v in lags if t < half]),
            ("second_half", [v for t, v in lags if t >= half]),
        ):
            part.sort()
            out[f"lag_median_{name}"] = part[len(part) // 2] if part else None
            out[f"lag_max_{name}"] = part[-1] if part else None
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "stats": self.stats.as_dict(),
            "instances": self.counts(),
            "lag": self.lag_summary(),
            "reconnects": sum(e["reconnects"] for e in self.health.values()),
            "errors": sum(e["errors"] for e in self.health.values()),
            "samples": self.samples,
            "peak_rss_mb": peak_rss_mb(),
            "refused": self.refused,
            "retention": self.retention,
        }

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.health.values():
            out[entry["status"]] = out.get(entry["status"], 0) + 1
        return out

    def failure(self) -> str | None:
        """Why nothing could be collected, when no instance was ever read: no event came, no
        stream connected and no page was read at any point of the run, whatever each
        instance's state at its end (failing, needing a token, or still waiting for an
        answer: a server that hangs). The CLI then exits with status 1. None otherwise: an
        instance that was read and stayed quiet worked."""
        entries = self.health
        if not entries or self.stats.events:
            return None
        if any(entry.get("reached") for entry in entries.values()):
            return None
        states = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items()))
        host, first = min(entries.items())
        if first["status"] == Status.FAILING and first["last_error"]:
            why = first["last_error"]  # (its detail promises a retry the run will not make)
        elif first["status"] == Status.STARTING:
            why = "no answer by the end of the run"
        else:
            why = first["detail"] or first["last_error"] or first["status"]
        why = " ".join(why.split())[:500]  # remote text: one line, bounded like last_error
        if not why.startswith(host):
            why = f"{host}: {why}"
        more = ""
        if len(entries) > 1:
            more = f" ({len(entries) - 1} more: every instance's state is in "
            more += f"{self.state_dir}/health.json)" if self.state_dir else "the summary)"
        return f"Nothing was collected: no instance could be read ({states}). {why}{more}"


@dataclass
class Progress:
    """What the status line shows, built by `collect()` twice a second."""

    stats: RunStats
    fleet: FleetSource

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.fleet.counts())

    @property
    def lag(self) -> float | None:
        return self.fleet.lag()


def collect(
    instances: Sequence[InstanceSpec],
    lake: str,
    *,
    state_dir: str | None = None,
    options: FleetOptions | None = None,
    duration: float | None = None,
    include_opted_out: bool = False,
    consent: Consent | None = None,
    flush_seconds: float = 60.0,
    stop: threading.Event | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    sink: LakeWriter | None = None,
    kafka: str | None = None,
    topic: str | None = None,
    schema_registry: str | None = None,
    kafka_config: dict[str, Any] | None = None,
    merge_every: float | None = 300.0,
    policy: Policy | None = None,
    retain_days: float | None = None,
    pseudonymizer: Pseudonymizer | None = None,
) -> CollectResult:
    """Collect from `instances` until `duration` passes or `stop` is set; drain, flush,
    commit the cursors and return what happened.

    With `kafka` (bootstrap servers) the posts go to a Kafka topic instead of the lake (the
    `tootlake sink` workers write it); cursors then advance once Kafka acknowledged delivery.
    `kafka_config`: librdkafka settings over the producer's (`Settings.kafka`: SASL, TLS...).
    `merge_every`: seconds between merges of the `posts` table while collecting into the lake
    (None: only at the end); readers of tootlake's views never wait for it (docs/lake.md).
    `policy`: instances it denies are not read (a log line each says why; the result's
    `refused`). `retain_days`: at the end of the run, after the last merge, remove posts,
    sightings and rejects older than that (`tootlake.lake.maintenance.retain`); not with
    `kafka` (run `tootlake compact --retain` where the sink writes). Each run appends a row
    to the lake's `audit` table. `consent`: the consent gates (`tootlake.record.Consent`;
    `include_opted_out` is its "none" mode), applied before anything reaches Kafka or the lake.
    `pseudonymizer`: pseudonymise every record as it is made, before Kafka or the lake
    (`tootlake.record.pseudonymize`); the lake must be pseudonymised with the same key, or new.
    """
    consent = Consent.given(consent, include_opted_out)
    if not instances:
        raise ConfigError("No instance to collect from: give --instance or --instances-file.")
    if retain_days is not None and kafka:
        raise ConfigError(
            "--retain applies to the lake collect writes; with --kafka the sink writes it: run "
            "`tootlake compact --retain DAYS` on that lake instead."
        )
    refused: dict[str, str] = {}
    if policy is not None:
        allowed = []
        for spec in instances:
            ok, why = policy.decide(spec.host)
            if ok:
                allowed.append(spec)
            else:
                refused[spec.host] = why
                log.warning("Not collecting from %s: %s", spec.host, why)
        if not allowed:
            raise ConfigError(
                f"Every instance given is denied by the policy {policy.path}: nothing to collect."
            )
        instances = allowed
    key_id = None if pseudonymizer is None else pseudonymizer.key_id
    if not kafka:  # before anything is written (the sink checks a topic's lake)
        from tootlake.lake.pseudonyms import claim

        claim(lake, key_id)
    if pseudonymizer is not None and state_dir is None:
        log.warning(
            "The collector's cursors (the newest raw status id of each instance, needed to "
            "resume) are kept in %s, inside the pseudonymised lake: give --state DIR outside "
            "it before sharing the lake.",
            default_state_dir(lake),
        )
    rules = _rules_hashes(instances) if policy is not None and not kafka else {}
    state_dir = state_dir or default_state_dir(lake)
    state = CollectorState(state_dir)
    stop = stop or threading.Event()
    fleet = FleetSource(instances, state, options=options, stop=stop)
    # (Kafka and pseudonymised records are Post objects: a native status would be decoded
    # again for them)
    fleet.native_statuses = not kafka and pseudonymizer is None
    started_at = datetime.now(UTC)
    stats = RunStats()
    recorder = Recorder(stats, consent=consent, dedupe=True, pseudonymizer=pseudonymizer)
    timer = None
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    progress = Progress(stats, fleet)
    samples: list[tuple[float, int, float | None, int]] = []

    def tick(_stats: RunStats) -> None:
        elapsed = time.monotonic() - stats.started
        if not samples or elapsed - samples[-1][0] >= 1.0:
            # After the stop no post arrives while the drain runs: "now - the newest post"
            # would measure the drain (it made lag max 1.3 s in benchmarks), not a lag.
            lag = None if stop.is_set() else fleet.lag()
            samples.append(
                (
                    round(elapsed, 2),
                    stats.written,
                    None if lag is None else round(lag, 3),
                    stats.events,
                )
            )
            if len(samples) > 86_400:  # a day of samples, then every other one
                del samples[::2]
        if on_progress is not None:
            on_progress(progress)

    try:
        with fewer_collections():
            if kafka:
                from tootlake.pipeline import produce

                def tick_and_save(stats_now: RunStats) -> None:
                    state.save()  # the acks ran on delivery: the cursors are safe to persist
                    tick(stats_now)

                produce(
                    fleet.events(),
                    kafka=kafka,
                    recorder=recorder,
                    topic=topic,
                    schema_registry=schema_registry,
                    config=kafka_config,
                    stop=stop,
                    linger=0.25,
                    on_progress=tick_and_save,
                )
            else:
                run(
                    fleet.events(),
                    sink or LakeWriter(lake, max_age=flush_seconds, sightings=True),
                    recorder=recorder,
                    linger=0.25,
                    on_commit=PeriodicMerge(lake, merge_every, then=state.save),
                    on_progress=tick,
                    keep_writing=stop,
                )
                merge_lake(lake, isolated=True)
    finally:
        if timer is not None:
            timer.cancel()
        stop.set()
        state.save()
    health = fleet.health()
    if pseudonymizer is not None:  # an instance's error may quote a URL with a status id
        for entry in health.values():
            for key in ("detail", "last_error"):
                if isinstance(entry.get(key), str):
                    entry[key] = pseudonymizer.message(entry[key])
    retention = None
    if retain_days is not None:
        retention = _retain(lake, retain_days)
    save_run(lake, "collect", stats, started_at, instances=health)
    if not kafka:  # with Kafka the lake is the sink's
        audit_run(
            lake,
            "collect",
            stats,
            started_at,
            consent=consent,
            instances=health,
            policy_sha256=policy.sha256 if policy is not None else None,
            refused=refused,
            rules=rules,
            retain_days=retain_days,
            retention_removed=sum((retention or {}).values()),
            key_id=key_id,
        )
    return CollectResult(stats, health, state_dir, samples, refused, retention)


RULES_TIMEOUT = 10.0  # seconds to read the collected instances' rules at the start


def _rules_hashes(instances: Sequence[InstanceSpec]) -> dict[str, str | None]:
    """The hash of each instance's rules as they are when a collection under a policy
    starts (for the audit table): read all at once, within RULES_TIMEOUT; None where they
    could not be read."""

    async def one(session: Any, spec: InstanceSpec) -> str | None:
        found = await fetch_instance_policy(session, spec.url, token=spec.token, only_rules=True)
        return found.rules_sha256

    async def main(session: Any) -> dict[str, str | None]:
        try:
            hashes = await asyncio.wait_for(
                asyncio.gather(*(one(session, spec) for spec in instances)), RULES_TIMEOUT
            )
        except TimeoutError:
            return {spec.host: None for spec in instances}
        return {spec.host: value for spec, value in zip(instances, hashes, strict=True)}

    try:
        return dict(_run(lambda: _with_session(main, RULES_TIMEOUT)))
    except MissingDependency:
        return {}


def _retain(lake: str, days: float) -> dict[str, int] | None:
    """Retention at the end of a collection; a failure is logged, not raised (the run's
    posts are committed; the next run or `tootlake compact --retain` removes them)."""
    from tootlake.errors import TootlakeError
    from tootlake.lake.maintenance import retain

    try:
        stats = retain(lake, days)
    except TootlakeError as exc:
        log.warning("Could not apply the retention of %g days to %s: %s", days, lake, exc)
        return None
    log.info("retention of %g days: removed %s", days, stats.removed)
    return stats.removed


# ----------------------------------------------------------------------------------------
# instances check / discover


@dataclass
class InstanceReport:
    """What `collect` would do with an instance."""

    instance: str
    action: str  # stream / poll / needs token / down
    reason: str
    version: str = ""
    streaming: str = ""
    live_feeds: str = ""
    registrations: bool | None = None
    token: bool = False
    policy: InstancePolicy | None = None  # rules, terms, privacy policy (`rules=True`)
    decision: str = ""  # what --policy says: allow / deny, and why
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["policy"] = self.policy.as_dict() if self.policy is not None else None
        return out


async def _check_one(session: Any, spec: InstanceSpec, timeline: str) -> InstanceReport:
    # As `collect` does (fleet.InstanceWorker._run_once): a refused token is said so, and
    # the instance is judged by what it allows without one.
    token, rejected = spec.token, ""
    try:
        try:
            info = await probe(session, spec.url, token)
        except AuthRequired as exc:
            if not token:
                return InstanceReport(
                    spec.host, Mode.NEEDS_TOKEN, f"the API needs a token: {exc}", token=False
                )
            rejected, token = f"token rejected: {exc}", None
            info = await probe(session, spec.url, None)
    except AuthRequired as exc:
        return InstanceReport(spec.host, Mode.NEEDS_TOKEN, rejected or str(exc), token=True)
    except InstanceError as exc:
        return InstanceReport(spec.host, Mode.DOWN, str(exc), token=bool(spec.token))
    action, reason = choose_mode(info, timeline, bool(token))
    if rejected:
        reason = f"{rejected}; {reason}"
    feeds = "/".join(info.live_feeds.get(h, "?") for h in ("local", "remote"))
    return InstanceReport(
        spec.host,
        action,
        reason,
        info.version,
        info.streaming_url or "",
        feeds,
        info.registrations,
        bool(spec.token),
        description=info.description,
    )


async def _check_with_policy(
    session: Any, spec: InstanceSpec, timeline: str, rules: bool, policy: Policy | None
) -> InstanceReport:
    report = await _check_one(session, spec, timeline)
    if policy is not None:
        ok, why = policy.decide(spec.host)
        report.decision = f"{'allow' if ok else 'deny'}: {why}"
    if rules and report.action != Mode.DOWN:
        report.policy = await fetch_instance_policy(
            session, spec.url, token=spec.token, description=report.description
        )
    return report


def _run(factory: Callable[[], Any]) -> Any:
    """asyncio.run(factory()), also where this thread already runs a loop (a notebook): then
    on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="tootlake-instances")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def _with_session(func: Callable[[Any], Any], timeout: float) -> Any:
    try:
        import aiohttp
    except ImportError as exc:  # the collect extra brings it
        raise MissingDependency("aiohttp", "collect") from exc

    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": USER_AGENT},
        connector=aiohttp.TCPConnector(limit=64),
        trust_env=False,
    ) as session:
        return await func(session)


def check_instances(
    instances: Sequence[InstanceSpec],
    timeline: str = "public",
    timeout: float = 15.0,
    *,
    rules: bool = True,
    policy: Policy | None = None,
) -> list[InstanceReport]:
    """Probe each instance and say what collect would do (stream/poll/needs token/down).
    `rules`: also read its rules, terms of service and privacy policy, and flag the topics
    (research, scraping, bots, archiving, AI) its rules and description mention
    (`tootlake.sources.policy`). `policy`: say what it decides for each."""

    async def main(session: Any) -> list[InstanceReport]:
        return list(
            await asyncio.gather(
                *(_check_with_policy(session, s, timeline, rules, policy) for s in instances)
            )
        )

    return _run(lambda: _with_session(main, timeout))


def discover_instances(
    start: str, limit: int, timeline: str = "public", timeout: float = 15.0
) -> list[InstanceReport]:
    """Peers of `start` (`/api/v1/instance/peers`), probed until `limit` answered."""
    base = normalize_instance(start)

    async def main(session: Any) -> list[InstanceReport]:
        try:
            peers, _ = await get_json(
                session, f"{base}/api/v1/instance/peers", what=f"{base} /api/v1/instance/peers"
            )
        except InstanceError as exc:
            raise ConfigError(f"Cannot list the peers of {start}: {exc}") from exc
        if not isinstance(peers, list):
            raise ConfigError(f"{start}: /api/v1/instance/peers is not a list of hosts")
        scheme = base.split("://", 1)[0]
        found: list[InstanceReport] = []
        hosts = [str(p) for p in peers if isinstance(p, str) and p]
        for offset in range(0, len(hosts), 64):
            chunk = [InstanceSpec(f"{scheme}://{h.lower()}") for h in hosts[offset : offset + 64]]
            reports = await asyncio.gather(*(_check_one(session, s, timeline) for s in chunk))
            found.extend(r for r in reports if r.action != Mode.DOWN)
            if len(found) >= limit:
                break
        return found[:limit]

    return _run(lambda: _with_session(main, timeout))
