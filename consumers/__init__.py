"""Consumers: the Redis read model (projector), the tracking API and page, and customer
notifications (webhooks, e-mail). Read ``parcel-state`` and ``status-updates``."""
