"""What the Kafka sink's decoder makes of a schema registry's answers, against a registry over a
socket (tests/registry_sim.py): an id it does not know makes dead letters (asked once for a
batch of them); a failing, stalled or unreachable registry is `RegistryUnavailable` (the
worker holds the batch and tries again), asked once more only after a moment; a registry that
refuses the login, a URL that names no registry, or an answer that is no registry's stop the
worker with a `TransportError` that says to check --schema-registry (trying again would wait
for good; dead letters would write the posts off); a URL the client cannot use is a
`ConfigError`. Found by a review: all of those were dead letters or an endless outage."""

from __future__ import annotations

import json
import time

import pytest

from tests.ports import free_port
from tests.registry_sim import registry_sim
from tootlake.errors import ConfigError, RegistryUnavailable, TransportError
from tootlake.kafka.decode import EnvelopeDecoder
from tootlake.kafka.schema import envelope_schema

pytest.importorskip("confluent_kafka")


def framed(schema_id: int) -> bytes:
    """A Confluent-framed value naming `schema_id` (its body does not matter here)."""
    return b"\x00" + schema_id.to_bytes(4, "big") + b"\x02abc"


def registered(sim) -> int:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": sim.url})
    return client.register_schema("t-value", Schema(json.dumps(envelope_schema()), "AVRO"))


def test_an_unknown_id_makes_dead_letters_and_is_asked_once_for_a_batch():
    with registry_sim() as sim:
        decoded = EnvelopeDecoder(sim.url).decode([framed(77)] * 200)
        asked = sim.requests
    assert [why for _, why in decoded.errors] == [
        "schema id 77 is not in the schema registry"
    ] * 200
    assert asked == 1


@pytest.mark.parametrize(("status", "code"), [(503, 50301), (500, 50001), (429, 42901)])
def test_a_failing_registry_is_unavailable_and_not_asked_again_at_once(status, code):
    with registry_sim() as sim:
        schema_id = registered(sim)
        sim.fail(status, code)
        decoder = EnvelopeDecoder(sim.url)
        with pytest.raises(RegistryUnavailable, match=f"HTTP status code {status}"):
            decoder.decode([framed(schema_id)])
        asked = sim.requests
        # another partition's flush a moment later fails at once, without a request
        with pytest.raises(RegistryUnavailable, match=f"HTTP status code {status}"):
            decoder.decode([framed(schema_id)])
        assert sim.requests == asked
        time.sleep(0.6)  # (then it is asked again: the registry is back)
        sim.serve()
        decoded = decoder.decode([framed(schema_id)])
    assert sim.requests == asked + 1
    assert decoded.errors and "not in the schema registry" not in decoded.errors[0][1]


def test_a_stalled_registry_times_out_after_two_tries(monkeypatch):
    monkeypatch.setattr("tootlake.kafka.schema.REGISTRY_TIMEOUT", 0.5)
    with registry_sim() as sim:
        schema_id = registered(sim)
        sim.stall()
        before, start = sim.requests, time.monotonic()
        with pytest.raises(RegistryUnavailable, match="Cannot reach the schema registry"):
            EnvelopeDecoder(sim.url).decode([framed(schema_id)])
        took = time.monotonic() - start
        asked = sim.requests - before
    assert asked == 2 and took < 5, (asked, took)  # (the client's default: 4 tries, no timeout)


def test_a_registry_out_of_reach_is_unavailable():
    with pytest.raises(RegistryUnavailable, match="Cannot reach the schema registry"):
        EnvelopeDecoder(f"http://127.0.0.1:{free_port()}").decode([framed(1)])


@pytest.mark.parametrize(("status", "code"), [(401, 40101), (403, 40301), (422, 42201)])
def test_a_registry_refusing_the_request_stops_with_what_to_check(status, code):
    with registry_sim() as sim:
        schema_id = registered(sim)
        sim.fail(status, code)
        with pytest.raises(
            TransportError, match=rf"\(HTTP {status}\).*Check --schema-registry"
        ) as info:
            EnvelopeDecoder(sim.url).decode([framed(schema_id)])
    assert not isinstance(info.value, RegistryUnavailable)


def test_a_url_that_names_no_registry_stops_instead_of_writing_dead_letters():
    """A wrong path answers 404 too, but not "schema not found" (40403)."""
    with registry_sim() as sim:
        schema_id = registered(sim)
        with pytest.raises(TransportError, match=r"\(HTTP 404\).*Check --schema-registry"):
            EnvelopeDecoder(sim.url + "/wrong-prefix").decode([framed(schema_id)])


def test_an_answer_that_is_no_registrys_stops_with_what_to_check():
    with registry_sim() as sim:
        schema_id = registered(sim)
        sim.garble()
        with pytest.raises(TransportError, match="cannot be read.*Check --schema-registry") as info:
            EnvelopeDecoder(sim.url).decode([framed(schema_id)])
    assert not isinstance(info.value, RegistryUnavailable)


def test_a_url_the_client_cannot_use_is_a_config_error():
    with pytest.raises(ConfigError, match="needs http:// or https://"):
        EnvelopeDecoder("registry.internal:8081").decode([framed(1)])


def test_a_producer_given_a_url_the_client_cannot_use_gets_a_config_error_without_the_login():
    from tootlake.kafka.encode import confluent_encoder

    with pytest.raises(ConfigError, match="needs http:// or https://") as info:
        confluent_encoder("htp://apikey:Reg1stryS3cretPass@127.0.0.1:1", "posts")
    assert "Reg1stryS3cretPass" not in str(info.value)


def test_an_id_no_registry_can_hold_is_a_dead_letter_without_a_request():
    """Registries number schemas with a signed 32-bit int; a corrupt message's id above it
    is answered with a plain 404 by Confluent's (the path does not parse)."""
    with registry_sim() as sim:
        decoded = EnvelopeDecoder(sim.url).decode([framed(2**32 - 1)])
        asked = sim.requests
    assert decoded.errors[0][1] == f"schema id {2**32 - 1} is not in the schema registry"
    assert asked == 0


def test_a_registry_answering_a_plain_404_for_an_unknown_id_makes_dead_letters():
    """Some registries answer an unknown id with error_code 404 rather than 40403: that is
    the id's fault once the URL is seen to answer as a registry (it lists its subjects); a
    URL that does not stops the worker (test above)."""
    with registry_sim() as sim:
        sim.not_found_code = 404
        decoded = EnvelopeDecoder(sim.url).decode([framed(9), framed(9)])
    assert [why for _, why in decoded.errors] == ["schema id 9 is not in the schema registry"] * 2


def test_an_id_unknown_a_moment_ago_is_asked_again_after_two_seconds():
    """A registry replica lagging its leader may not know an id registered a moment ago: an
    unknown id is remembered for 2 s (one request for a batch), not longer."""
    with registry_sim() as sim:
        decoder = EnvelopeDecoder(sim.url)
        assert decoder.decode([framed(1)]).errors  # not registered yet
        schema_id = registered(sim)
        assert schema_id == 1
        time.sleep(2.1)
        decoded = decoder.decode([framed(1)])
    assert decoded.errors and "not in the schema registry" not in decoded.errors[0][1]


def test_a_200_that_holds_no_schema_stops_with_what_to_check():
    """A health check or another service's JSON at the URL (`{"status": "UP"}`): it was read
    as an unusable schema, its messages written off as dead letters."""
    with registry_sim() as sim:
        sim.garble({"status": "UP"})
        with pytest.raises(TransportError, match="holds no schema.*Check --schema-registry"):
            EnvelopeDecoder(sim.url).decode([framed(1)])


@pytest.mark.parametrize("url", ["http//127.0.0.1:1", "httpx://127.0.0.1:1", "http://", "x"])
def test_a_url_the_client_would_take_but_cannot_speak_is_a_config_error(url):
    """confluent-kafka checks only that the URL starts with "http": `http//host` reached
    httpx as a scheme it cannot speak, which was read as an outage (tried for good)."""
    with pytest.raises(ConfigError, match="needs http:// or https://"):
        EnvelopeDecoder(url).decode([framed(1)])


def test_https_to_a_plain_port_stops_with_what_to_check():
    """TLS refused because of how the client is set up is not an outage: trying again for
    good would not mend it."""
    with registry_sim() as sim:
        url = sim.url.replace("http://", "https://")
        with pytest.raises(TransportError, match="Check --schema-registry") as info:
            EnvelopeDecoder(url).decode([framed(1)])
    assert not isinstance(info.value, RegistryUnavailable)


def test_certificates_that_cannot_be_read_are_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with registry_sim() as sim:
        try:
            EnvelopeDecoder(sim.url).decode([framed(1)])
        except ConfigError as exc:
            assert "Cannot set up TLS for the schema registry" in str(exc)
        else:  # (a client that does not read SSL_CERT_FILE up front: nothing to sort)
            pytest.skip("this client does not read SSL_CERT_FILE when it is made")


@pytest.mark.parametrize(("status", "code"), [(503, 50301), (401, 40101)])
def test_a_huge_hostile_error_message_is_cut_to_one_short_line(status, code):
    """The error quotes the registry's message: a broken or hostile one of 5 MB, with newlines
    and terminal escapes, is cut (it is logged, held with the batch, and printed)."""
    with registry_sim() as sim:
        schema_id = registered(sim)
        sim.fail(status, code, message="\x1b[31mred\nline " * 400_000)
        with pytest.raises(TransportError) as info:
            EnvelopeDecoder(sim.url).decode([framed(schema_id)])
    said = str(info.value)
    assert len(said) < 1_000 and "\n" not in said, len(said)
