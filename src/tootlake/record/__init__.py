"""Records: what tootlake keeps of a status, and how a status becomes one.

`model` holds the record types (Post, Delete, Sighting, Reject) and the lake and wire schemas
derived from them; `status` validates a status at the edge and builds the post.
"""

from __future__ import annotations

from tootlake.record.consent import GATES, Consent, consent_level, skip_reason
from tootlake.record.model import (
    RAW_LIMIT,
    Delete,
    Post,
    Reject,
    Sighting,
    arrow_schema,
    avro_record_schema,
    avro_schema,
    delete_arrow_schema,
    reject_arrow_schema,
    sighting_arrow_schema,
)
from tootlake.record.status import (
    FIRST_DATETIME_SECOND,
    LAST_DATETIME_SECOND,
    Rejection,
    Status,
    StatusData,
    ValidStatus,
    append_post,
    decode_status,
    decode_stream_status,
    from_status,
    host_of,
    is_opted_out,
    mend_surrogates,
    parse_time,
    to_post,
    usable_id,
    valid,
    validate_status,
)

__all__ = [
    "FIRST_DATETIME_SECOND",
    "GATES",
    "LAST_DATETIME_SECOND",
    "RAW_LIMIT",
    "Consent",
    "Delete",
    "Post",
    "Reject",
    "Rejection",
    "Sighting",
    "Status",
    "StatusData",
    "ValidStatus",
    "arrow_schema",
    "avro_record_schema",
    "avro_schema",
    "consent_level",
    "decode_status",
    "decode_stream_status",
    "delete_arrow_schema",
    "from_status",
    "host_of",
    "is_opted_out",
    "mend_surrogates",
    "parse_time",
    "reject_arrow_schema",
    "sighting_arrow_schema",
    "skip_reason",
    "to_post",
    "append_post",
    "usable_id",
    "validate_status",
    "valid",
]
