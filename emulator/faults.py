"""Fault knobs: what a test or a benchmark turns to make the emulator misbehave like Stripe can.

All knobs are plain attributes (set them on `server.faults`, or out of process with
`POST /_emulator/faults` and a JSON object). One seeded RNG drives every random choice, so a run
with the same seed and the same requests makes the same choices.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, fields

from .errors import ApiError


@dataclass
class Faults:
    rate_limit_per_s: float | None = None   # API requests per second beyond which we answer 429
    error_ratio: float = 0.0                # share of API requests answered 500 api_error (before any effect)
    latency_ms: int = 0                     # added before every API request is handled
    duplicate_deliveries: int = 0           # each webhook is delivered this many extra times
    reorder_window: float = 0.0             # seconds: deliveries are held a random time in [0, window)
    seed: int | None = None                 # reseeds the RNG when set
    webhook_retry_backoff_s: float = 0.5    # first retry delay; doubles each attempt (Stripe: hours)
    webhook_retry_max_backoff_s: float = 30.0
    webhook_max_attempts: int = 8           # Stripe: retries for up to 3 days
    webhook_timeout_s: float = 10.0
    dunning_days: float = 14.0              # clock time from the first failed renewal to cancellation
    search_lag_s: float = 0.0               # new objects appear in /search only after this (Stripe: up to ~1 min)
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _window_start: float = field(default=0.0, repr=False)
    _window_count: int = field(default=0, repr=False)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "seed" and value is not None and "_rng" in self.__dict__:
            self._rng.seed(value)

    def __post_init__(self):
        if self.seed is not None:
            self._rng.seed(self.seed)

    # -- used by the server ---------------------------------------------------------------------

    def public(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def update(self, values: dict) -> None:
        known = set(self.public())
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault knob: {key}")
            setattr(self, key, value)

    def random(self) -> float:
        with self._lock:
            return self._rng.random()

    def shuffle_delay(self) -> float:
        return self.random() * self.reorder_window if self.reorder_window else 0.0

    def before_request(self) -> None:
        """Latency, then the rate limit, then random 500s: the order Stripe's edge would apply."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        if self.rate_limit_per_s is not None and not self._admit():
            raise ApiError(429, "invalid_request_error",
                           "Request rate limit exceeded. Learn more about rate limits here "
                           "https://stripe.com/docs/rate-limits.", code="rate_limit")
        if self.error_ratio and self.random() < self.error_ratio:
            raise ApiError(500, "api_error", "An unknown error occurred (emulator fault injection).",
                           should_retry=True)

    def _admit(self) -> bool:
        """A fixed one-second window, like Stripe's per-second limit."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            limit = self.rate_limit_per_s
            return limit is None or self._window_count <= limit
