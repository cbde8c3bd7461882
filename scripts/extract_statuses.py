"""Extract the statuses of the recorded vcr cassettes (tests/fixtures/real/*.yml) into one
JSON-lines file of `{"observed_on": host, "status": {...}}`, the replay format that keeps
the instance each status was observed on. Run: python scripts/extract_statuses.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real"


def statuses(value: object):
    if isinstance(value, dict):
        if "uri" in value and "content" in value and "account" in value:
            yield value
            return
        for child in value.values():
            yield from statuses(child)
    elif isinstance(value, list):
        for child in value:
            yield from statuses(child)


def main() -> None:
    out = HERE / "timelines.jsonl"
    seen = set()
    with open(out, "w", encoding="utf-8") as handle:
        for cassette in sorted(HERE.glob("*.yml")):
            for interaction in yaml.safe_load(cassette.read_text())["http_interactions"]:
                host = urlsplit(interaction["request"]["uri"]).netloc
                try:
                    body = json.loads(interaction["response"]["body"]["string"])
                except ValueError:
                    continue
                for status in statuses(body):
                    key = (host, status["id"])
                    if key in seen:
                        continue
                    seen.add(key)
                    line = {"observed_on": host, "status": status}
                    handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote {len(seen)} statuses to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
