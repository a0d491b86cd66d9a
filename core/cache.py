"""A Redis cache that fails open: when Redis cannot be reached, reads miss, writes are dropped and `add` succeeds,
with one logged warning per outage, instead of raising into every request.

The API's throttles and allauth's login rate limits read the cache on every request; with a plain RedisCache an
unreachable Redis turned every endpoint (health included) into a 500. Failing open means limits are not enforced
while Redis is down, which is the documented trade-off: the service answers, `/health` says the cache is down.

After a failure the cache is skipped for `OPTIONS["RETRY_AFTER_SECONDS"]` (default 5 s) in this process, so a
Redis that hangs costs one socket timeout per interval, not one per cache call. `check()` always talks to Redis
(the health check uses it).
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("premier.cache")

# Socket timeouts (seconds) unless the cache OPTIONS set their own: a hung Redis costs at most this per call.
DEFAULT_SOCKET_TIMEOUT = 0.5


def _fail_open(default_factory):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            if self._skip_until > time.monotonic():
                return default_factory(args, kwargs)
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any Redis or socket error means "cache unavailable"
                self._mark_down(exc)
                return default_factory(args, kwargs)

        return wrapper

    return decorate


def _get_default(args, kwargs):
    return kwargs.get("default", args[1] if len(args) > 1 else None)


class FailOpenRedisCache(RedisCache):
    def __init__(self, server, params):
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.retry_after = float(options.pop("RETRY_AFTER_SECONDS", 5))
        options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._skip_until = 0.0
        self._lock = threading.Lock()

    def _mark_down(self, exc: Exception) -> None:
        with self._lock:
            was_up = self._skip_until <= time.monotonic()
            self._skip_until = time.monotonic() + self.retry_after
        if was_up:
            logger.warning(
                "Cache unreachable (%s: %s); throttles and login rate limits are not enforced until it answers "
                "again (next try in %.0f s).",
                type(exc).__name__,
                exc,
                self.retry_after,
            )

    def check(self) -> None:
        """Write and read a key on Redis itself (no fail-open); raises when Redis does not answer."""
        key = self.make_and_validate_key("premier:health")
        client = self._cache.get_client(key, write=True)
        client.set(key, b"1", ex=10)
        client.get(key)
        with self._lock:
            self._skip_until = 0.0

    get = _fail_open(_get_default)(RedisCache.get)
    add = _fail_open(lambda a, k: True)(RedisCache.add)  # fail open: a lock that cannot be taken is not held
    set = _fail_open(lambda a, k: None)(RedisCache.set)
    touch = _fail_open(lambda a, k: False)(RedisCache.touch)
    delete = _fail_open(lambda a, k: False)(RedisCache.delete)
    get_many = _fail_open(lambda a, k: {})(RedisCache.get_many)
    has_key = _fail_open(lambda a, k: False)(RedisCache.has_key)
    set_many = _fail_open(lambda a, k: [])(RedisCache.set_many)
    delete_many = _fail_open(lambda a, k: None)(RedisCache.delete_many)
    clear = _fail_open(lambda a, k: None)(RedisCache.clear)

    def incr(self, key, delta=1, version=None):
        if self._skip_until > time.monotonic():
            raise ValueError(f"Key '{key}' not found (cache unavailable).")
        try:
            return super().incr(key, delta, version)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._mark_down(exc)
            raise ValueError(f"Key '{key}' not found (cache unavailable).") from exc
