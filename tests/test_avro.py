"""The Avro envelope on Kafka: framing, shipped schemas, evolution, and the sink's decoder.
No broker needed; tests/kafka/ has the end-to-end suites."""

import copy
import io
import json
from datetime import UTC, datetime

import fastavro
import msgspec
import pytest

import tootlake.kafka.decode as avro_decode
import tootlake.kafka.encode as avro_encode
import tootlake.kafka.schema as avro_schema
from tootlake.kafka.decode import EnvelopeDecoder
from tootlake.kafka.encode import envelope_of, key_of, single_object_encoder
from tootlake.kafka.schema import canonical_form, envelope_schema, fingerprint, shipped_schemas
from tootlake.lake.writer import records_to_table
from tootlake.record import (
    RAW_LIMIT,
    Delete,
    Post,
    Reject,
    Rejection,
    Sighting,
    decode_status,
    from_status,
    validate_status,
)
from tootlake.sources import reject_event

from .conftest import all_real_statuses


def real_posts() -> list[Post]:
    posts = []
    for _where, observed_on, status in all_real_statuses():
        try:
            posts.append(from_status(status, observed_on))
        except Exception:  # the few statuses a post cannot be built from
            continue
    return posts


NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def real_rejects() -> list[Reject]:
    """Rejects as the sources make them, from real statuses broken the ways issue 9 found
    (plus a line that is not JSON at all, and one longer than the rejects table keeps)."""
    where, observed_on, status = next(iter(all_real_statuses()))
    rejects = []
    for source, broken in [
        ("stream", {**status, "created_at": "0001-01-01T00:00:00+01:00"}),
        ("poll", {**status, "account": "bob"}),
        ("replay", {**status, "uri": 5, "content": "é☃ " * 30_000}),  # cut to RAW_LIMIT
    ]:
        rejection = validate_status(broken)
        assert isinstance(rejection, Rejection)
        raw = json.dumps(broken, ensure_ascii=False)
        rejects.append(
            reject_event(rejection, raw, source=source, observed_on=observed_on, where=where).reject
        )
    garbage = b"\xff\xfe{not json"
    rejection = decode_status(garbage)
    assert isinstance(rejection, Rejection)
    rejects.append(
        reject_event(
            rejection, garbage, source="replay", observed_on=None, where="x.jsonl:7"
        ).reject
    )
    assert all(r is not None for r in rejects)
    assert len(rejects[2].raw) == RAW_LIMIT and rejects[3].field is None
    return rejects  # type: ignore[return-value]


def some_records() -> list[Post | Delete | Sighting | Reject]:
    posts = real_posts()
    rejects = real_rejects()
    return [
        *posts[:40],
        Delete("mastodon.social", "109381827277220624", None, NOW),
        Delete("fosstodon.org", "1", posts[0].uri, NOW),
        Sighting(posts[1].uri, "example.social", "4242", NOW),
        *rejects[:3],
        *posts[40:60],
        rejects[3],
        *posts[60:],
    ]


def test_fingerprint_is_crc64_avro_as_in_the_spec_and_fastavro():
    assert fingerprint('"int"') == 0x7275D51A3F395C8F  # the Avro spec's test vector
    pcf = canonical_form(envelope_schema())
    assert fingerprint(envelope_schema()).to_bytes(8, "little").hex() == (
        fastavro.schema.fingerprint(pcf, "CRC-64-AVRO")
    )


def test_single_object_encoding_is_magic_fingerprint_then_body():
    post = real_posts()[0]
    value = single_object_encoder()(post)
    assert value[:2] == b"\xc3\x01"
    assert value[2:10] == fingerprint(envelope_schema()).to_bytes(8, "little")
    datum = fastavro.schemaless_reader(io.BytesIO(value[10:]), envelope_schema(), None)
    assert datum["kind"] == "post" and datum["delete"] is None and datum["sighting"] is None
    assert datum["reject"] is None
    assert datum["post"]["uri"] == post.uri and datum["post"]["created_at"] == post.created_at


def test_the_code_schema_is_shipped_as_the_newest_avsc():
    shipped = shipped_schemas()
    assert shipped, "src/tootlake/kafka/schemas/ has no envelope-vN.avsc"
    newest = shipped[-1]
    hint = "the Avro schema derived from tootlake.record changed: run scripts/gen_avro_schema.py"
    assert newest.fingerprint == fingerprint(envelope_schema()), hint
    assert newest.schema == envelope_schema(), f"docs or defaults changed: {hint}"
    assert [s.version for s in shipped] == list(range(1, len(shipped) + 1))


def _records_of(schema: dict) -> dict[str, dict]:
    """name -> record schema of every record in an envelope schema."""
    found = {schema["name"]: schema}
    for f in schema["fields"]:
        for branch in f["type"] if isinstance(f["type"], list) else [f["type"]]:
            if isinstance(branch, dict) and branch.get("type") == "record":
                found.update(_records_of(branch))
    return found


def test_every_shipped_schema_only_adds_fields_with_defaults():
    shipped = [s.schema for s in shipped_schemas()] + [envelope_schema()]
    for old, new in zip(shipped, shipped[1:], strict=False):
        old_records, new_records = _records_of(old), _records_of(new)
        assert set(old_records) <= set(new_records)
        for name, old_record in old_records.items():
            new_fields = new_records[name]["fields"]
            old_names = [f["name"] for f in old_record["fields"]]
            assert [f["name"] for f in new_fields[: len(old_names)]] == old_names, name
            for added in new_fields[len(old_names) :]:
                assert "default" in added, f"{name}.{added['name']} was added without a default"


def _without_last_fields(schema: dict, record: str, n: int) -> dict:
    old = copy.deepcopy(schema)
    old["fields"] = old["fields"][:-1]  # an envelope from before its last kind was added
    target = _records_of(old)[record]
    target["fields"] = target["fields"][:-n]
    return old


@pytest.mark.parametrize("bulk", [True, False])
def test_messages_of_an_older_schema_are_read_by_the_new_reader(monkeypatch, bulk):
    # "v0": the current schema minus Post's last field (opted_out, default false) and minus the
    # envelope's last branch (reject, default null), as if both were added later.
    old = _without_last_fields(envelope_schema(), "Post", 1)
    post = real_posts()[0]
    datum = envelope_of(post)
    del datum["reject"]
    del datum["post"][1]["opted_out"]
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + fingerprint(old).to_bytes(8, "little"))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(old), datum)
    known = {**avro_schema.writer_schemas(), fingerprint(old): old}
    monkeypatch.setattr(avro_decode, "writer_schemas", lambda: known)
    decoded = EnvelopeDecoder(bulk=bulk).decode([buffer.getvalue()])
    assert decoded.errors == []
    (row,) = decoded.table("post").to_pylist()
    assert row["opted_out"] is False  # the new field's default
    assert row["uri"] == post.uri and row["text"] == post.text and row["tags"] == post.tags


def _v1() -> dict:
    """The envelope tootlake shipped before rejects were a kind (envelope-v1.avsc)."""
    (v1,) = [s for s in shipped_schemas() if s.version == 1]
    assert [f["name"] for f in v1.schema["fields"]] == ["kind", "post", "delete", "sighting"]
    return v1.schema


def _as_records(decoded: avro_decode.DecodedBatch) -> list:
    """The decoded rows as records again, in message order."""
    rows = []
    for kind, cls in avro_schema.KINDS.items():
        for i, row in zip(decoded.index(kind).to_pylist(), decoded.table(kind).to_pylist(),
                          strict=True):  # fmt: skip
            rows.append((i, cls(**row)))
    return [record for _, record in sorted(rows, key=lambda r: r[0])]


# Post fields added after envelope-v2 (issues 12 and 13): a v1 or v2 message lacks them
_SINCE_V3 = ("mentions", "in_reply_to_acct", "quote_uri", "quote_state", "quotes_count",
             "indexable", "discoverable", "locked", "group", "moved_to", "consent")  # fmt: skip


def _as_of_v1(record):
    """The record as a v1 or v2 message carries it: the fields added since read as null."""
    if not isinstance(record, Post):
        return record
    return msgspec.structs.replace(record, **dict.fromkeys(_SINCE_V3))


def test_posts_of_v3_messages_read_consent_as_null():
    (v3,) = [s.schema for s in shipped_schemas() if s.version == 3]
    posts = [r for r in some_records() if isinstance(r, Post)]
    assert any(p.consent for p in posts)
    decoded = EnvelopeDecoder().decode([single_object_encoder(v3)(p) for p in posts])
    assert decoded.errors == []
    assert _as_records(decoded) == [msgspec.structs.replace(p, consent=None) for p in posts]


def test_posts_of_v2_messages_read_the_v3_fields_as_null():
    (v2,) = [s.schema for s in shipped_schemas() if s.version == 2]
    posts = [r for r in some_records() if isinstance(r, Post)]
    assert any(p.mentions for p in posts)  # (some carry mentions in v3)
    values = [single_object_encoder(v2)(p) for p in posts]
    for bulk in (True, False):
        decoded = EnvelopeDecoder(bulk=bulk).decode(values)
        assert decoded.errors == []
        assert _as_records(decoded) == [_as_of_v1(p) for p in posts]


@pytest.mark.parametrize("bulk", [True, False])
def test_messages_written_with_the_shipped_v1_envelope_still_decode(bulk):
    v1 = _v1()
    assert fingerprint(v1) != fingerprint(envelope_schema())
    records = [r for r in some_records() if not isinstance(r, Reject)]
    values = [single_object_encoder(v1)(r) for r in records]
    assert avro_encode.batch_encoder(v1)(records) == values  # what v1 producers wrote
    assert all(v[2:10] == fingerprint(v1).to_bytes(8, "little") for v in values)
    decoder = EnvelopeDecoder(bulk=bulk)
    decoded = decoder.decode(values)
    assert decoded.errors == [] and decoded.table("reject").num_rows == 0
    assert _as_records(decoded) == [_as_of_v1(r) for r in records]
    # mixed with today's messages in one batch: both decode, in order
    today = single_object_encoder()(real_rejects()[0])
    mixed = decoder.decode([values[0], today, values[1]])
    assert mixed.errors == [] and mixed.index("reject").to_pylist() == [1]
    assert mixed.index("post").to_pylist() == [0, 2]


def test_v1_confluent_messages_decode_and_an_old_reader_dead_letters_only_rejects(monkeypatch):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient.new_client({"url": "mock://test-avro-v1"})
    context = SerializationContext("posts", MessageField.VALUE)
    old = AvroSerializer(registry, json.dumps(_v1()), to_dict=lambda r, ctx: envelope_of(r))
    records = some_records()
    v1_values = [old(r, context) for r in records if not isinstance(r, Reject)]
    decoded = EnvelopeDecoder(registry).decode(v1_values)
    assert decoded.errors == []
    assert _as_records(decoded) == [_as_of_v1(r) for r in records if not isinstance(r, Reject)]
    # today's producers register v2 under the same subject (only a field added, with a default)
    v2_values = [avro_encode.confluent_encoder(registry, "posts")(r) for r in records]
    assert v2_values[0][1:5] != v1_values[0][1:5]
    # a sink still on v1 (rolling upgrade) reads v2 through the registry, and dead-letters
    # only the rejects, whose record it does not know
    monkeypatch.setattr(avro_decode, "envelope_schema", _v1)
    monkeypatch.setattr(
        avro_decode, "KINDS", {k: c for k, c in avro_schema.KINDS.items() if c is not Reject}
    )
    old_reader = EnvelopeDecoder(registry).decode(v2_values)
    rejected = [i for i, r in enumerate(records) if isinstance(r, Reject)]
    assert old_reader.errors == [(i, "envelope of kind 'reject' without its record")
                                 for i in rejected]  # fmt: skip
    assert old_reader.table("post").num_rows == sum(isinstance(r, Post) for r in records)


def test_mixed_batches_round_trip_through_every_encoder_and_decoder():
    from confluent_kafka.schema_registry import SchemaRegistryClient

    records = some_records()
    assert {type(r) for r in records} == set(avro_schema.KINDS.values())
    single = avro_encode.batch_encoder()(records)
    registry = SchemaRegistryClient.new_client({"url": "mock://test-avro-mixed"})
    confluent = [avro_encode.confluent_encoder(registry, "posts")(r) for r in records]
    for values in (single, confluent, [*single[:30], *confluent[30:]]):
        for bulk in (True, False):
            decoder = EnvelopeDecoder(registry, bulk=bulk)
            decoded = decoder.decode(values)
            assert decoded.errors == [] and decoder.bulk_fallbacks == 0
            assert _as_records(decoded) == records


def test_a_newer_reader_with_an_added_field_reads_todays_messages():
    newer = copy.deepcopy(envelope_schema())
    _records_of(newer)["Post"]["fields"].append(
        {"name": "quote_uri", "type": ["null", "string"], "default": None}
    )
    value = single_object_encoder()(real_posts()[0])
    datum = fastavro.schemaless_reader(io.BytesIO(value[10:]), envelope_schema(), newer)
    assert datum["post"]["quote_uri"] is None


def test_an_unknown_fingerprint_is_an_error_not_a_guess():
    value = bytearray(single_object_encoder()(real_posts()[0]))
    value[2:10] = b"\x00" * 8
    decoded = EnvelopeDecoder().decode([bytes(value)])
    assert decoded.errors == [(0, "unknown schema fingerprint 0000000000000000 (single object)")]


def test_bulk_decoding_equals_message_by_message_and_the_embedded_rows():
    from tootlake.record import (
        arrow_schema,
        delete_arrow_schema,
        reject_arrow_schema,
        sighting_arrow_schema,
    )

    records = some_records()
    values = [single_object_encoder()(r) for r in records]
    bulk = EnvelopeDecoder(bulk=True)
    fast, slow = bulk.decode(values), EnvelopeDecoder(bulk=False).decode(values)
    assert bulk.bulk_fallbacks == 0 and fast.errors == slow.errors == []
    schemas = {
        "post": arrow_schema(),
        "delete": delete_arrow_schema(),
        "sighting": sighting_arrow_schema(),
        "reject": reject_arrow_schema(),
    }
    assert set(schemas) == set(avro_schema.KINDS)
    for kind, cls in avro_schema.KINDS.items():
        assert fast.table(kind).equals(slow.table(kind)), kind
        assert fast.index(kind).equals(slow.index(kind)), kind
        mine = [r for r in records if isinstance(r, cls)]
        assert mine, kind
        assert fast.table(kind).equals(records_to_table(mine, schemas[kind])), kind
        assert fast.index(kind).to_pylist() == [
            i for i, r in enumerate(records) if isinstance(r, cls)
        ]


@pytest.mark.parametrize("bulk", [True, False])
def test_bad_messages_are_reported_by_position_and_the_rest_decoded(bulk):
    encode = single_object_encoder()
    posts = real_posts()[:6]
    good = [encode(p) for p in posts]
    wrong_kind = io.BytesIO()
    wrong_kind.write(good[0][:10])
    fastavro.schemaless_writer(
        wrong_kind, envelope_schema(), {**envelope_of(posts[0]), "kind": "delete"}
    )
    values = [
        good[0],
        b"not avro at all",  # 1
        good[1] + b"\x00\x01",  # 2: trailing bytes
        good[2][:-4],  # 3: truncated
        None,  # 4: a tombstone
        b"\x00\x00\x00\x00\x07" + good[3][10:],  # 5: Confluent framing, no registry given
        wrong_kind.getvalue(),  # 6
        good[4],
        good[5],
    ]
    decoder = EnvelopeDecoder(bulk=bulk)
    decoded = decoder.decode(values)
    assert [i for i, _ in decoded.errors] == [1, 2, 3, 4, 5, 6]
    reasons = dict(decoded.errors)
    assert reasons[1].startswith("not Avro")
    assert reasons[2] == "2 bytes after the Avro record"
    assert reasons[3].startswith("invalid Avro body")
    assert "no schema registry" in reasons[5]
    assert reasons[6] == "envelope of kind 'delete' without its record"
    assert decoded.index("post").to_pylist() == [0, 7, 8]
    assert decoded.table("post").column("uri").to_pylist() == [
        posts[0].uri,
        posts[4].uri,
        posts[5].uri,
    ]
    if bulk:
        assert decoder.bulk_fallbacks == 1  # the bad bodies shifted the guards


def test_confluent_wire_format_with_the_mock_registry():
    from confluent_kafka.schema_registry import SchemaRegistryClient

    registry = SchemaRegistryClient.new_client({"url": "mock://test-avro"})
    records = some_records()[:50]
    values = [avro_encode.confluent_encoder(registry, "posts")(r) for r in records]
    assert all(v[:1] == b"\x00" for v in values)
    assert registry.get_subjects() == ["posts-value"]
    decoder = EnvelopeDecoder(registry)
    decoded = decoder.decode(values)
    assert decoded.errors == [] and decoder.bulk_fallbacks == 0
    assert decoded.table("post").num_rows == 44 and decoded.table("delete").num_rows == 2
    assert decoded.table("sighting").num_rows == 1 and decoded.table("reject").num_rows == 3


def test_keys_put_a_post_its_sightings_and_its_delete_on_one_partition():
    post = real_posts()[0]
    key = key_of(post)
    assert key == post.uri.encode()
    assert key_of(Sighting(post.uri, "a.example", "9", NOW)) == key
    assert key_of(Delete(post.observed_on, post.id, post.uri, NOW)) == key
    assert key_of(Delete("mastodon.social", "123", None, NOW)) == b"mastodon.social/123"


def test_rejects_have_no_key_so_a_flooding_instance_spreads_over_the_partitions():
    assert {key_of(r) for r in real_rejects()} == {None}


def test_every_envelope_kind_has_a_lake_table_in_the_sink():
    from tootlake.kafka.sink import KIND_TABLES
    from tootlake.lake import layout

    assert set(KIND_TABLES) == set(avro_schema.KINDS)
    assert KIND_TABLES["reject"] == (layout.REJECTS, "rejected_at")
    for kind, (_table, column) in KIND_TABLES.items():
        assert avro_schema.lake_schema(kind).field(column).type.tz == "UTC", kind


def test_dead_letter_lines_carry_the_message_in_base64():
    line = avro_decode.dead_letter_line("t", 2, 17, "not Avro", b"\xffgarbage")
    assert json.loads(json.dumps(line)) == {
        "topic": "t", "partition": 2, "offset": 17, "error": "not Avro", "value": "/2dhcmJhZ2U=",
    }  # fmt: skip


# ----------------------------------------------------------------------------------------
# The naming rule behind exactly once, simulated: a partition's log of rows, each of one group
# (a table and date); batches that flush and commit, crashes between writing and committing
# (after any subset of a batch's files), and replays from the commit with other boundaries.


def test_the_batch_encoder_writes_exactly_what_fastavro_writes():

    posts = real_posts()
    edge = [
        msgspec.structs.replace(posts[0], text="é" * 70_000, characters=70_000, tags=[],
                            language=None, edited_at=None, words=-5),
        msgspec.structs.replace(posts[1], tags=["a", "ü" * 200, ""], followers_count=2**62 + 7,
                            created_at=datetime(1960, 1, 1, tzinfo=UTC)),
    ]  # fmt: skip
    records = [*some_records(), *edge]
    encode = single_object_encoder()
    assert avro_encode.batch_encoder()(records) == [encode(r) for r in records]
    assert avro_encode.batch_encoder()([records[40]]) == [
        encode(records[40])
    ]  # one kind, one record
    assert avro_encode.batch_encoder()([]) == []


def test_the_v3_fields_round_trip_through_every_encoder():
    post = next(r for r in some_records() if isinstance(r, Post))
    full = msgspec.structs.replace(
        post, mentions=["a@x.example", "b\u00e9@y.example"], in_reply_to_acct="a@x.example",
        quote_uri="https://q.example/1", quote_state="accepted", quotes_count=3, indexable=True,
        discoverable=False, locked=False, group=True, moved_to="n@m.example",
    )  # fmt: skip
    empty = msgspec.structs.replace(post, mentions=[], **dict.fromkeys(_SINCE_V3[1:]))
    records = [full, empty, _as_of_v1(post)]
    values = avro_encode.batch_encoder()(records)
    assert values == [single_object_encoder()(r) for r in records]
    for bulk in (True, False):
        assert _as_records(EnvelopeDecoder(bulk=bulk).decode(values)) == records
