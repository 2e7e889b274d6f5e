"""``PARCELSTREAM_*`` settings of the ingest gateway (CLI flags override them)."""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.event_time import EventTimeSettings
from schemas.settings import PipelineSettings


class GatewaySettings(PipelineSettings, EventTimeSettings):
    """Also PARCELSTREAM_MAX_FUTURE / PARCELSTREAM_MAX_AGE: records dated outside get 422."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding API keys, idempotency records and rate-limit buckets (PARCELSTREAM_REDIS_URL)."""
    redis_prefix: str = "parcelstream"
    """Prefix of every Redis key (PARCELSTREAM_REDIS_PREFIX)."""
    gateway_host: str = "127.0.0.1"
    """Interface the gateway listens on (PARCELSTREAM_GATEWAY_HOST)."""
    gateway_port: int = Field(8081, ge=0, le=65535)
    """Port of the gateway (PARCELSTREAM_GATEWAY_PORT)."""
    gateway_max_body_bytes: int = Field(5_000_000, ge=1)
    """Largest request body accepted; larger → 413 (PARCELSTREAM_GATEWAY_MAX_BODY_BYTES)."""
    gateway_max_records: int = Field(1000, ge=1)
    """Most records in one request; more → 413 (PARCELSTREAM_GATEWAY_MAX_RECORDS)."""
    gateway_rate_limit: float = Field(500.0, gt=0)
    """Records per second a carrier may send, over all gateway processes (PARCELSTREAM_GATEWAY_RATE_LIMIT)."""
    gateway_burst: int = Field(5000, ge=1)
    """Records a carrier may send at once before the rate applies (PARCELSTREAM_GATEWAY_BURST)."""
    gateway_delivery_timeout: float = Field(5.0, gt=0)
    """Seconds the broker has to acknowledge a batch; beyond → 503 (PARCELSTREAM_GATEWAY_DELIVERY_TIMEOUT)."""
    gateway_idempotency_ttl: int = Field(24 * 3600, ge=1)
    """Seconds a successful response is kept for Idempotency-Key retries (PARCELSTREAM_GATEWAY_IDEMPOTENCY_TTL)."""

    @model_validator(mode="after")
    def _burst_holds_a_batch(self) -> GatewaySettings:
        # A batch larger than the bucket could never be accepted.
        if self.gateway_burst < self.gateway_max_records:
            raise ValueError(
                f"gateway_burst ({self.gateway_burst}) must be at least "
                f"gateway_max_records ({self.gateway_max_records})"
            )
        return self
