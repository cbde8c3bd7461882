"""The talk's Kafka -> S3 step, as the baseline of the sinking benchmark.

The 2023 talk wrote its topic into S3 with Kafka Connect's S3 sink connector, Parquet format:
the AvroConverter decodes each message on its own, and the connector writes one file per
`flush.size` records per partition, named `<topic>+<partition>+<start offset>.parquet` (its
bucket showed "Objects (999+)" of about 185 KB each), committing offsets after each file.
Kafka Connect is not part of the broker this project runs (no Connect jars), so this script
re-enacts that pattern in Python, with the same libraries tootlake uses where it can:

  * a consumer-group member (manual commits, like Connect's), reading the same topic;
  * each message decoded on its own (fastavro's schemaless_reader, as AvroConverter and
    confluent-kafka's AvroDeserializer do), its single-object header checked;
  * a Parquet file (snappy, Connect's default codec) every FLUSH_SIZE messages of a partition,
    rows from the decoded dicts (pyarrow's from_pylist), written under a temporary name and
    renamed; the partition's offset committed synchronously after each file;
  * `--until-idle` as tootlake's: exit after that long without a message.

The posts are written whole (every column of tootlake's lake), not the talk's 14 fields, so
both sides write the same data.

    python bench/talk_sink.py KAFKA TOPIC GROUP FOLDER [--flush-size 1000] [--until-idle 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

from tootlake.kafka.schema import envelope_schema, single_object_header
from tootlake.record import arrow_schema


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kafka")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--flush-size", type=int, default=1000)
    parser.add_argument("--until-idle", type=float, default=1.0)
    args = parser.parse_args()

    schema = fastavro.parse_schema(envelope_schema())
    header = single_object_header(envelope_schema())
    lake_schema = arrow_schema()
    consumer = Consumer({
        "bootstrap.servers": args.kafka, "group.id": args.group, "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "session.timeout.ms": 6000,
    })  # fmt: skip
    consumer.subscribe([args.topic])
    buffers: dict[int, list[dict]] = {}
    starts: dict[int, int] = {}
    messages = files = 0
    started = last = time.monotonic()
    first = None

    def flush(partition: int, next_offset: int) -> None:
        nonlocal files
        rows = buffers.pop(partition)
        table = pa.Table.from_pylist(rows, schema=lake_schema)
        name = f"{args.topic}+{partition}+{starts.pop(partition):010d}.parquet"
        folder = args.folder / f"partition={partition}"
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        consumer.commit(
            offsets=[TopicPartition(args.topic, partition, next_offset)], asynchronous=False
        )
        files += 1

    # Idle: no message for until_idle seconds after the last one (or after a flush, which can
    # take long); before the first message the group join may take a few seconds.
    while time.monotonic() - last < args.until_idle + (0 if first else 10):
        for message in consumer.consume(1000, timeout=0.2):
            if message.error() is not None:
                continue
            value = message.value()
            if not value.startswith(header):
                continue
            envelope = fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None)
            partition = message.partition()
            if partition not in buffers:
                buffers[partition] = []
                starts[partition] = message.offset()
            buffers[partition].append(envelope["post"])
            messages += 1
            first = first or time.monotonic()
            last = time.monotonic()
            if len(buffers[partition]) >= args.flush_size:
                flush(partition, message.offset() + 1)
                last = time.monotonic()
    for partition in list(buffers):
        flush(partition, consumer.position([TopicPartition(args.topic, partition)])[0].offset)
    consumer.close()
    print(json.dumps({"messages": messages, "files": files, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    sys.exit(main())
