"""Settings of the consumer processes, from ``PARCELSTREAM_*`` environment variables (CLI flags override)."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import Field

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
    estimate_move_threshold_hours: float = Field(12.0, ge=0)
    """Hours the estimated window's start or end must shift by before the tracking page says the
    estimate moved, and why (PARCELSTREAM_ESTIMATE_MOVE_THRESHOLD_HOURS)."""
    tracking_host: str = "127.0.0.1"
    """Interface the tracking service listens on (PARCELSTREAM_TRACKING_HOST)."""
    tracking_port: int = 8080
    """Port of the tracking service (PARCELSTREAM_TRACKING_PORT)."""
    tracking_base_url: str = "http://127.0.0.1:8080"
    """Public base URL of the tracking page, used in signed links (PARCELSTREAM_TRACKING_BASE_URL)."""
    tracking_metrics_port: int = Field(9106, ge=0, le=65535)
    """Operations port of the tracking service's /metrics, never the public port; 0 serves none
    (PARCELSTREAM_TRACKING_METRICS_PORT)."""
    postcode_key: str = ""
    """Server secret keying the postcode hashes of the read model; the projector and the tracking
    service must share it. Empty: derived from PARCELSTREAM_TRACKING_SECRET; both empty: postcode
    look-ups are off (PARCELSTREAM_POSTCODE_KEY)."""
    tracking_max_failed_lookups_per_parcel: int = Field(10, ge=1)
    """Failed look-ups of one tracking number per window before postcodes are refused for it (429; the
    signed link still works) (PARCELSTREAM_TRACKING_MAX_FAILED_LOOKUPS_PER_PARCEL)."""
    tracking_max_failed_lookups_per_client: int = Field(30, ge=1)
    """Failed look-ups from one client address per window before its postcode look-ups are refused
    (PARCELSTREAM_TRACKING_MAX_FAILED_LOOKUPS_PER_CLIENT)."""
    tracking_failed_lookup_window: int = Field(900, ge=1)
    """Seconds a failed look-up counts (PARCELSTREAM_TRACKING_FAILED_LOOKUP_WINDOW)."""
    tracking_max_streams: int = Field(1000, ge=1)
    """Live-update streams one tracking process serves at once; more get 503
    (PARCELSTREAM_TRACKING_MAX_STREAMS)."""
    tracking_max_streams_per_client: int = Field(4, ge=1)
    """Live-update streams one client address may hold at once; more get 429
    (PARCELSTREAM_TRACKING_MAX_STREAMS_PER_CLIENT)."""

    @property
    def postcode_hash_key(self) -> bytes:
        """The key of postcode hashes: PARCELSTREAM_POSTCODE_KEY, else one derived from the link secret."""
        if self.postcode_key:
            return self.postcode_key.encode()
        if self.tracking_secret:
            return hmac.new(self.tracking_secret.encode(), b"parcelstream-postcode-key-v1", hashlib.sha256).digest()
        return b""
