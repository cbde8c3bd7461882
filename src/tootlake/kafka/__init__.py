"""Kafka, the scale-out path: collectors produce to a topic, sink workers write it to the lake.

    settings   librdkafka client settings: defaults < [kafka] in the config file <
               TOOTLAKE_KAFKA_* < -X flags; secrets masked; DEFAULT_TOPIC
    schema     the Avro envelope (derived from tootlake.record), its framings, fingerprints and
               the shipped schema files (kafka/schemas/envelope-vN.avsc)
    encode     records -> envelopes, a column at a time (and the message key)
    decode     envelopes -> Arrow tables of the lake's schemas, in bulk (and dead letters)
    producer   KafkaTransport: a sending transport (`tootlake.transports.Sender`)
    sink       KafkaSinkWorker: a consumer-group member that commits a topic's partitions to
               the lake's Delta tables exactly once

The package sits above `tootlake.transports` (the producer is one) and `tootlake.lake` (the
sink worker writes it), below `tootlake.pipeline`; it alone imports confluent_kafka and
fastavro (`[tool.importlinter]` in pyproject.toml). Importing it imports neither: the clients
load them when made. docs/kafka.md has the long form.
"""
