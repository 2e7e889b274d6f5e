"""The worker shell: Faust app, agents, tables, Kafka transport, serialisation and metrics around the
pure rules of ``streams.core``."""
