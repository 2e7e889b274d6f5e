"""Contracts between the stages: Avro schemas, the codec, topics and the shared vocabulary."""
