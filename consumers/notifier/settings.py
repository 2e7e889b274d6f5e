"""Notifier settings: ``PARCELSTREAM_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

from pydantic import field_validator

from consumers.notifier.egress import EgressPolicy, parse_networks
from schemas.settings import PipelineSettings


class NotifierSettings(PipelineSettings):
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding subscriptions and the notification outbox."""
    redis_prefix: str = "parcelstream"
    """Prefix of every Redis key (<prefix>:notifier:...)."""
    notifier_group_id: str = "parcelstream-notifier"
    """Kafka consumer group reading status-updates and parcel-commands (erasures)."""
    notifier_session_timeout_ms: int = 45_000
    """Consumer group session timeout; heartbeats go every sixth of it (at most every 3 s)."""
    notifier_metrics_port: int = 9104
    """Port of the Prometheus /metrics endpoint; 0 disables it."""
    notifier_max_retries: int = 14
    """Retries after the first attempt before a notification goes to the dead-letter topic."""
    notifier_retry_base_delay_s: float = 30.0
    """Wait before the first retry; doubles with each retry (2^n × base)."""
    notifier_request_timeout_s: float = 10.0
    """Timeout of one webhook request or SMTP session."""
    notifier_rate_per_endpoint: float = 20.0
    """Deliveries per second to one endpoint (token bucket; bursts up to twice that)."""
    notifier_endpoint_concurrency: int = 4
    """Parcels delivered at once to one endpoint (one parcel's updates always go one by one)."""
    notifier_egress_allow: str = ""
    """Networks webhooks may reach although not public, comma-separated (e.g. 127.0.0.1/32 for a local
    receiver); plain http:// only to these. Empty: public HTTPS endpoints only."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "notifications@parcelstream.invalid"

    @field_validator("notifier_egress_allow")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # fails at start, naming the bad entry
        return value

    @property
    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy(parse_networks(self.notifier_egress_allow))
