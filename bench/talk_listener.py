"""The talk's listener, as the baseline of the record and ingest benchmarks.

The 2023 talk's `mastodonlisten.py` subclassed Mastodon.py's `StreamListener`; `on_update`
stripped the HTML with BeautifulSoup, copied fields into a dict and produced it to Kafka:

    m_text = BeautifulSoup(status.content, 'html.parser').text
    value_dict = {'m_id': status.id, 'created_at': int(now.strftime('%s')), ...,
                  'mastodon_text': m_text}
    producer.produce(topic=topic_name, value=value_dict); producer.flush()

`talk_value_dict()` is that transform. Run as a script, this feeds a recorded SSE capture
through Mastodon.py 1.8.0's own stream parser (`StreamListener.handle_stream`: its line
splitting, `json.loads` with Mastodon.py's hooks: ids to int, dates through dateutil,
AttribAccessDict for every object) from a response-like object that yields the file's bytes,
and appends each value dict to a list where the talk produced to Kafka.

Differences, each in the baseline's favour: no Kafka produce and no flush per message (a list
append instead); no console echo (the talk's `--quiet`); the file is handed over in 64 KiB
chunks where `requests` would yield one byte per `iter_content(chunk_size=1)` call.
One fix: the talk's `status.application.get('name')` raises on a local status whose
`application` is null (real servers send those), which would end its stream; here it is
guarded.

    python bench/talk_listener.py CAPTURE.sse [--base-url https://mastodon.social]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

from bs4 import BeautifulSoup

MASTODON_PY = "1.8.0"  # what the talk's requirements.txt pins


def talk_value_dict(status: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The talk's `on_update` transform of one status into its Kafka value."""
    m_text = BeautifulSoup(status["content"], "html.parser").text
    num_tags = len(status["tags"])
    num_chars = len(m_text)
    num_words = len(m_text.split())
    m_lang = status["language"]
    if m_lang is None:
        m_lang = "unknown"
    m_user = status["account"]["username"]
    app = ""
    # attribute only available on local
    if "application" in status:
        app = (status["application"] or {}).get("name")  # the talk: status.application.get(...)
    now_dt = datetime.datetime.now()
    return {
        "m_id": status["id"],
        "created_at": int(now_dt.strftime("%s")),
        "created_at_str": now_dt.strftime("%Y %m %d %H:%M:%S"),
        "app": app,
        "url": status["url"],
        "base_url": base_url,
        "language": m_lang,
        "favourites": status["favourites_count"],
        "username": m_user,
        "bot": status["account"]["bot"],
        "tags": num_tags,
        "characters": num_chars,
        "words": num_words,
        "mastodon_text": m_text,
    }


class CaptureResponse:
    """What `handle_stream` needs of a `requests` response: `iter_content`."""

    def __init__(self, path: str, chunk: int = 65536) -> None:
        self.path = path
        self.chunk = chunk

    def iter_content(self, chunk_size: int = 1) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            while block := handle.read(self.chunk):
                yield block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", help="an SSE capture (bench/run.py makes one)")
    parser.add_argument("--base-url", default="https://mastodon.social")
    args = parser.parse_args(argv)

    installed = version("Mastodon.py")
    if installed != MASTODON_PY:
        sys.exit(
            f"The talk's baseline needs Mastodon.py {MASTODON_PY}, not {installed}: "
            f'pip install "Mastodon.py=={MASTODON_PY}"'
        )
    import mastodon

    values: list[dict[str, Any]] = []  # the talk's Kafka topic
    base_url = args.base_url

    class Listener(mastodon.StreamListener):  # type: ignore[misc]
        def on_update(self, status: Any) -> None:
            values.append(talk_value_dict(status, base_url))

    started = time.perf_counter()
    Listener().handle_stream(CaptureResponse(args.capture))
    seconds = time.perf_counter() - started
    print(json.dumps({"updates": len(values), "stream_seconds": round(seconds, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
