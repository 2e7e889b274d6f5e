"""The Redis check every Redis-backed command runs before it starts (projector, tracking, the dev
stack): one line saying which Redis does not answer and how to start one. Here so that stages need
not import ``deploy/``."""

from __future__ import annotations

START_HINT = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


class RedisUnavailableError(RuntimeError):
    """Redis does not answer PING; the message says where and how to start one."""


def check_redis(url: str) -> None:
    """Raise RedisUnavailableError, with a one-line hint, when Redis does not answer PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        message = f"Redis at {url} does not answer ({error}). Start one with: {START_HINT}"
        raise RedisUnavailableError(message) from error
    finally:
        client.close()
