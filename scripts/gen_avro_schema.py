#!/usr/bin/env python
"""Ship the code's Avro envelope schema: src/tootlake/kafka/schemas/envelope-vN.avsc.

Run it after changing `Post` or `Delete` (tests/test_avro.py fails until you have):
  * when the schema's fingerprint is new, it writes the next version, envelope-v(N+1).avsc;
  * when only docs or defaults changed (same fingerprint), it rewrites the newest file.
Shipped files are never removed: readers find old messages' schemas among them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tootlake.kafka.schema import (
    SCHEMA_FILE_PREFIX,
    envelope_schema,
    fingerprint,
    schema_file_text,
    shipped_schemas,
)

FOLDER = Path(__file__).resolve().parent.parent / "src" / "tootlake" / "kafka" / "schemas"


def main() -> int:
    schema = envelope_schema()
    text = schema_file_text(schema)
    shipped = shipped_schemas()
    fp = fingerprint(schema)
    FOLDER.mkdir(parents=True, exist_ok=True)
    if shipped and shipped[-1].fingerprint == fp:
        path = FOLDER / shipped[-1].name
        if path.read_text(encoding="utf-8") == text:
            print(f"{path.name} is up to date (fingerprint {fp:016x})")
            return 0
        path.write_text(text, encoding="utf-8")
        print(f"rewrote {path.name}: same fingerprint {fp:016x}, new docs or defaults")
        return 0
    if any(s.fingerprint == fp for s in shipped):
        print(f"the code's schema equals an older shipped version (fingerprint {fp:016x}); "
              "schemas only ever gain fields", file=sys.stderr)  # fmt: skip
        return 1
    version = shipped[-1].version + 1 if shipped else 1
    path = FOLDER / f"{SCHEMA_FILE_PREFIX}{version}.avsc"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.name} (fingerprint {fp:016x})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
