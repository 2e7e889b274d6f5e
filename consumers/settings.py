"""Settings of the consumer processes, from ``PARCELSTREAM_*`` environment variables (CLI flags override)."""

from __future__ import annotations

from schemas.settings import PipelineSettings


class ConsumerSettings(PipelineSettings):
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding the read model (PARCELSTREAM_REDIS_URL)."""
    redis_prefix: str = "parcelstream"
    """Prefix of every read-model key and pub/sub channel (PARCELSTREAM_REDIS_PREFIX)."""
    projector_group_id: str = "parcelstream-projector"
    """Consumer group of the projector (PARCELSTREAM_PROJECTOR_GROUP_ID)."""
    projector_metrics_port: int = 9103
    """Port of the projector's /metrics endpoint; 0 serves none (PARCELSTREAM_PROJECTOR_METRICS_PORT)."""
    tracking_secret: str = ""
    """Server secret signing tracking-link tokens; empty disables token look-ups (PARCELSTREAM_TRACKING_SECRET)."""
    operations_key: str = ""
    """API key of the operations endpoints; empty disables them (PARCELSTREAM_OPERATIONS_KEY)."""
    projector_movements: bool = True
    """The projector also reads manifests and unit scans for the movement board (PARCELSTREAM_PROJECTOR_MOVEMENTS)."""
    movement_retention_days: float = 14.0
    """Days the movement board keeps a movement after its last record (PARCELSTREAM_MOVEMENT_RETENTION_DAYS)."""
    tracking_host: str = "127.0.0.1"
    """Interface the tracking service listens on (PARCELSTREAM_TRACKING_HOST)."""
    tracking_port: int = 8080
    """Port of the tracking service (PARCELSTREAM_TRACKING_PORT)."""
    tracking_base_url: str = "http://127.0.0.1:8080"
    """Public base URL of the tracking page, used in signed links (PARCELSTREAM_TRACKING_BASE_URL)."""
