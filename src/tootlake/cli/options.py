"""Options more than one command takes, each defined once (sqlite-utils' decorator bundles).

A command names what differs (its help text, its default) and gets the same flag, the same
parameter name and the same environment variable as every other command with that option.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import click

from tootlake.kafka.settings import DEFAULT_TOPIC, parse_options
from tootlake.settings import MAX_RETAIN_DAYS, load_settings

__all__ = [
    "Seconds",
    "TIMELINE",
    "format_option",
    "consent_options",
    "include_opted_out_option",
    "instances_options",
    "load_policy_of",
    "kafka_brokers_option",
    "kafka_option",
    "one_lake",
    "lake_argument_or_option",
    "lake_option",
    "policy_option",
    "pseudonymize_option",
    "pseudonymizer_of",
    "quiet_option",
    "retain_option",
    "schema_registry_option",
    "settings_and_specs",
    "skip_corrupt_option",
    "topic_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

TIMELINE = click.Choice(["public", "local", "remote"])


def _lower_bound(kind: click.FloatRange | click.IntRange) -> str:
    """The range as help shows it when its upper bound is there only to refuse overflows."""
    if kind.min is None:
        return ""
    return f"x{'>' if kind.min_open else '>='}{kind.min}"


class Number(click.FloatRange):
    """A finite number in a range: `nan` passes a range check, `inf` an open one. With
    `show_max=False` help shows only the lower bound (the upper one refuses overflows)."""

    what = "a number"

    def __init__(self, *args: Any, show_max: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.show_max = show_max

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not {self.what}.", param, ctx)
        if not self.show_max and self.max is not None and number > self.max:
            self.fail(f"{value} is more than {self.max:,.0f}.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        return super()._describe_range() if self.show_max else _lower_bound(self)


class Count(click.IntRange):
    """A whole number from `min` to one DuckDB and the timers can hold (10**30 overflowed
    them), help showing only the lower bound."""

    def __init__(self, min: int = 0, max: int = 2**62) -> None:  # noqa: A002 (click's names)
        super().__init__(min, max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{value} is more than {self.max:,}.", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        return _lower_bound(self)


MAX_RATE = 1_000_000.0  # posts per second a simulation publishes at most (inf overflowed)
# Ten years: longer overflows the timers a time is given to (1e30 s hung `collect`)
MAX_SECONDS = 10 * 365 * 86_400


class Seconds(Number):
    """A time in seconds: not negative (above zero with `above_zero`), finite, at most ten
    years. `nan` passes a range check (a `--duration nan` run stopped at once); `inf` and
    1e30 overflow the timers it is given to."""

    name = "seconds"
    what = "a number of seconds"

    def __init__(self, *, above_zero: bool = False) -> None:
        super().__init__(min=0, min_open=above_zero, max=MAX_SECONDS, show_max=False)


class MemoryLimit(click.ParamType):
    """DuckDB's memory limit (700MB, 2GB, 80%...), checked by DuckDB when the command line
    is read: a typo failed only when the limit was first used, in `migrate` after copying."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from tootlake.errors import ConfigError
        from tootlake.lake.reader import connect, set_memory_limit

        con = connect()
        try:
            set_memory_limit(con, str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)
        finally:
            con.close()
        return str(value)


def lake_option(
    func: Callable[..., Any] | None = None,
    *,
    default: str | None = None,
    metavar: str = "PATH|s3://BUCKET/PREFIX",
    help: str = "The lake (default ./lake; env TOOTLAKE_LAKE).",
) -> Any:
    """`--lake PATH|s3://...`, also from TOOTLAKE_LAKE and the config file (`load_settings`).
    Bare (`@lake_option`) or with a command's own default and help (`@lake_option(...)`)."""
    option = click.option(
        "--lake", default=default, show_default=default is not None, metavar=metavar, help=help
    )
    return option if func is None else option(func)


def lake_argument_or_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`[LAKE]` as an argument (`lake_path`) or `--lake` (`lake`); `one_lake` joins them."""
    func = lake_option(
        func,
        help="The lake, if not given as LAKE (default ./lake; env TOOTLAKE_LAKE).",
    )
    return click.argument("lake_path", metavar="[LAKE]", required=False)(func)


def one_lake(lake_path: str | None, lake: str | None) -> str | None:
    """The lake of `lake_argument_or_option` (None: settings decide); two different ones are a
    usage error."""
    if lake_path and lake and lake_path != lake:
        raise click.UsageError(f"Two lakes given: {lake_path} and --lake {lake}; give one.")
    return lake_path or lake


def skip_corrupt_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--skip-corrupt`: read the rest of a lake with corrupt Parquet files."""
    return click.option(
        "--skip-corrupt",
        is_flag=True,
        help="Leave out corrupt or truncated Parquet files (a warning names each) instead of "
        "stopping at the first.",
    )(func)


def format_option(
    choices: Sequence[str],
    *,
    default: str,
    help: str | None = None,
    show_default: bool = False,
) -> Decorator:
    """`--format` (the parameter `fmt`) with the formats this command can write."""
    return click.option(
        "--format",
        "fmt",
        default=default,
        show_default=show_default,
        type=click.Choice(list(choices)),
        help=help,
    )


def quiet_option(help: str) -> Decorator:
    """`--quiet/-q`: no progress or status line."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


def policy_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--policy FILE`: the instance policy (`tootlake.sources.policy`); unset (None) lets
    TOOTLAKE_POLICY or the config file's `policy` decide."""
    return click.option(
        "--policy",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="FILE",
        help="Instance policy (TOML: per instance decision = allow|deny, contact, note; a "
        "default for the others): denied instances are not read. Env TOOTLAKE_POLICY; "
        "`policy` in the config file.",
    )(func)


def load_policy_of(settings: Any) -> Any:
    """The `Policy` the settings name, or None."""
    if not settings.policy:
        return None
    from tootlake.sources.policy import load_policy

    return load_policy(settings.policy)


def retain_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--retain DAYS`; unset (None) lets TOOTLAKE_RETAIN or the config file's `retain`
    decide."""
    return click.option(
        "--retain",
        type=Number(min=0, max=MAX_RETAIN_DAYS),
        default=None,
        metavar="DAYS",
        help="Remove posts older than DAYS (by created_at) with their detected languages, and "
        "sightings and rejects older than DAYS, physically (env TOOTLAKE_RETAIN; `retain` in "
        "the config file).",
    )(func)


def pseudonymize_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--pseudonymize KEYFILE`; unset (None) lets TOOTLAKE_PSEUDONYMIZE or the config
    file's `pseudonymize` decide."""
    return click.option(
        "--pseudonymize",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="KEYFILE",
        help="Pseudonymise accounts, ids, uris and mentions with this secret key (from "
        "`tootlake keygen`; keep it outside the lake) before anything reaches Kafka or the "
        "lake: docs/pseudonymisation.md. Env TOOTLAKE_PSEUDONYMIZE; `pseudonymize` in the "
        "config file.",
    )(func)


def pseudonymizer_of(settings: Any, flag: str | None) -> Any:
    """The Pseudonymizer of `--pseudonymize` (`flag`), else of the settings', or None."""
    if flag:
        from tootlake.record.pseudonymize import Pseudonymizer

        return Pseudonymizer.from_file(flag)
    return settings.pseudonymizer()


def include_opted_out_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--include-opted-out`; unset (None) lets the config file decide."""
    return click.option(
        "--include-opted-out",
        is_flag=True,
        default=None,
        help="Keep posts of accounts that opted out of indexing (noindex, #nobot...).",
    )(func)


def consent_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--consent`, `--skip-locked`, `--skip-bots`; unset (None) lets the config file decide."""
    func = click.option(
        "--skip-bots/--no-skip-bots",
        default=None,
        help="Skip accounts marked as bots (env TOOTLAKE_SKIP_BOTS).",
    )(func)
    func = click.option(
        "--skip-locked/--no-skip-locked",
        default=None,
        help="Skip locked accounts, those who approve their followers (env TOOTLAKE_SKIP_LOCKED; "
        "always skipped with --consent opt-in).",
    )(func)
    return click.option(
        "--consent",
        type=click.Choice(["opt-out", "opt-in", "none"]),
        default=None,
        help="opt-out (the default): public posts of accounts that did not opt out (noindex, "
        "#nobot #nobots #noindex #nosearch #noarchive in the bio or a profile field). opt-in: "
        "also only accounts that opted in to search (indexable) and are not locked. none: "
        "opted-out accounts too (as --include-opted-out). docs/research.md says what each "
        "gate means (env TOOTLAKE_CONSENT; consent in the config file).",
    )(func)


# -- Kafka: the brokers, the topic, the schema registry, and librdkafka's own settings -------


def kafka_brokers_option(help: str, *, required: bool = False) -> Decorator:
    """`--kafka HOST:PORT` (env TOOTLAKE_KAFKA)."""
    return click.option(
        "--kafka", required=required, envvar="TOOTLAKE_KAFKA", metavar="HOST:PORT", help=help
    )


def topic_option(help: str) -> Decorator:
    """`--topic` (env TOOTLAKE_TOPIC), `mastodon-posts` unless given."""
    return click.option(
        "--topic", default=DEFAULT_TOPIC, show_default=True, envvar="TOOTLAKE_TOPIC", help=help
    )


def schema_registry_option(help: str) -> Decorator:
    """`--schema-registry URL` (env TOOTLAKE_SCHEMA_REGISTRY)."""
    return click.option(
        "--schema-registry", envvar="TOOTLAKE_SCHEMA_REGISTRY", metavar="URL", help=help
    )


def kafka_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`-X/--kafka-option KEY=VALUE` (repeatable) for every command that talks to Kafka; the
    command passes the pairs to `load_settings(kafka=parse_options(...))`
    (`tootlake.kafka.settings` checks them)."""
    return click.option(
        "--kafka-option",
        "-X",
        "kafka_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A librdkafka setting, e.g. -X security.protocol=SASL_SSL (repeatable). Wins over "
        "TOOTLAKE_KAFKA_<KEY> (dots as _) and the config file's [kafka] section; put passwords "
        "there: other local users can read a command line (ps).",
    )(func)


# -- instances and their tokens (collect, instances check) -----------------------------------


def instances_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--token`, `--token-file` and `--timeline`."""
    func = click.option(
        "--token",
        "tokens",
        multiple=True,
        metavar="INSTANCE=TOKEN",
        help="A user token for an instance (repeatable). Other local users can read a command "
        "line (ps): prefer --token-file or TOOTLAKE_TOKEN_<HOST>. Never logged or stored.",
    )(func)
    func = click.option(
        "--token-file",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="User tokens, one INSTANCE=TOKEN a line (# comments); keep it chmod 600. Also "
        "TOOTLAKE_TOKEN_<HOST> and the config file's [tokens] table.",
    )(func)
    func = click.option(
        "--timeline",
        default="public",
        show_default=True,
        type=TIMELINE,
        help="Which public timeline: all, the instance's own posts, or the federated rest.",
    )(func)
    return func


def settings_and_specs(
    instances: tuple[str, ...],
    instances_file: str | None,
    tokens: tuple[str, ...],
    token_file: str | None,
    lake: str | None = None,
    include_opted_out: bool | None = None,
    kafka_options: tuple[str, ...] = (),
    policy: str | None = None,
    retain: float | None = None,
    consent: str | None = None,
    skip_locked: bool | None = None,
    skip_bots: bool | None = None,
) -> tuple[Any, list[Any]]:
    """The values of the instance, token, lake and Kafka options -> (settings, instance
    specs). Token precedence: config < environment < --token-file < --token."""
    from tootlake.collector import (
        parse_token_flags,
        read_instances,
        read_instances_file,
        read_token_file,
    )

    given = read_token_file(token_file) if token_file else {}
    given.update(parse_token_flags(tokens))  # --token, the more specific, wins
    settings = load_settings(
        lake=lake,
        include_opted_out=include_opted_out,
        tokens=given,
        kafka=parse_options(kafka_options),
        policy=policy,
        retain=retain,
        consent=consent,
        skip_locked=skip_locked,
        skip_bots=skip_bots,
    )
    names = list(instances)
    if instances_file:
        listed = read_instances_file(instances_file)
        if not listed:
            from tootlake.errors import ConfigError

            raise ConfigError(
                f"The instances file {instances_file} names no instance (one host or URL a "
                "line; # starts a comment)."
            )
        names += listed
    return settings, read_instances(names, settings)


def _check_tz(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from tootlake.analysis.queries import check_tz
    from tootlake.errors import ConfigError

    try:
        return check_tz(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


tz_option = click.option(
    "--tz",
    default="UTC",
    show_default=True,
    envvar="TOOTLAKE_TZ",
    metavar="ZONE",
    callback=_check_tz,
    help="IANA time zone of days and hours (e.g. Europe/Berlin). Env TOOTLAKE_TZ.",
)
