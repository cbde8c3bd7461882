"""The datetime range bounds the Kafka decoder and the report share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tootlake.record import FIRST_DATETIME_SECOND, LAST_DATETIME_SECOND

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def test_bounds_are_the_first_and_last_second_a_datetime_holds():
    # (exact: the float timestamp() of datetime.max rounds up to the year 10000)
    assert (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _SECOND == FIRST_DATETIME_SECOND
    assert (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _SECOND == LAST_DATETIME_SECOND
