"""API keys and per-key rate limits.

Keys come from the environment (`LORAWEEK_API_KEYS`, comma separated), never from
code or a notebook.  The check hashes the presented key and every configured key with
SHA-256 and compares the digests with `secrets.compare_digest`, visiting *all* keys, so
the response time says nothing about how much of a key was right or which one matched
(vLLM does the same).  Neither keys nor the Authorization header are ever logged; the
limiter identifies a key by a short hash.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time

KEYS_ENV = "LORAWEEK_API_KEYS"


def keys_from_env(env=os.environ) -> list[str]:
    return [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    def __init__(self, keys: list[str]):
        if not keys:
            raise ValueError(f"no API keys: set {KEYS_ENV}=key1,key2 in the server's environment")
        self._digests = [_digest(k) for k in keys]

    def check(self, presented: str | None) -> str | None:
        """The key's id (a hash prefix, safe to log) if it is valid, else None."""
        if not presented:
            return None
        d = _digest(presented)
        ok = False
        for ref in self._digests:           # no early exit: constant work per request
            ok |= secrets.compare_digest(d, ref)
        return d.hex()[:8] if ok else None


def presented_key(headers) -> str | None:
    """`Authorization: Bearer <key>` (scheme case-insensitive, as RFC 7235 says) or `X-Api-Key`."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute, bursts up to `burst`."""

    def __init__(self, per_minute: float, burst: int | None = None):
        self.rate = per_minute / 60.0
        self.capacity = float(burst or max(1, int(per_minute)))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> float:
        """0 if the request may go, else the seconds to wait before retrying."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self.rate
