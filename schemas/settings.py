"""Connection settings every stage shares, read from ``PARCELSTREAM_*`` environment variables.

Each stage extends ``PipelineSettings`` with its own fields; flags on the CLI override them.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import DEFAULT_PREFIX, TopicNames


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARCELSTREAM_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (host:port,...)."""
    topic_prefix: str = DEFAULT_PREFIX
    """Prefix of every topic name: <prefix>.scans, <prefix>.parcel-state, ..."""
    partitions: int = 4
    """Partitions of each topic when the pipeline creates them."""
    replication_factor: int = 1
    """Replicas of each topic when the pipeline creates them (3 on a production cluster)."""

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_prefix)
