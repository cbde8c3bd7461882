# The functions of native/src/: each equals its Python original (docs/native.md).
from typing import Any

POST_FIELDS: tuple[str, ...]
VALID_STATUS_FIELDS: tuple[str, ...]
STATUS_FIELDS: tuple[str, ...]
ACCOUNT_FIELDS: tuple[str, ...]

def simple_text(html: str) -> str | None: ...
def count_words(text: str) -> int | None: ...
def may_hold_tag(html: str) -> bool | None: ...
def arrow_column(values: list[Any], kind: int) -> tuple[int, list[bytes | None]] | None: ...
def arrow_batch(
    records: list[Any], kinds: list[int], astuple: Any
) -> list[tuple[int, list[bytes | None]] | None] | None: ...
def to_post(
    status: Any,
    observed_on: str | None,
    ingested_at: Any,
    opted_out: bool | None,
    consent: str | None,
    helpers: tuple[Any, ...],
) -> Any: ...
