"""Prometheus metrics, in a registry of their own so several apps (tests) can coexist.

Names follow Prometheus conventions: one prefix, base units (`_seconds`), counters
ending in `_total`, low-cardinality labels only (a route or a status, never a prompt
or a key).  Error rate in PromQL:
`rate(router_http_requests_total{status=~"5.."}[5m]) / rate(router_http_requests_total[5m])`.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class RouterMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("router_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("router_request_duration_seconds", "Chat completion latency, end to end",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("router_time_to_first_token_seconds", "Time to the first generated text",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("router_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generated_tokens = Counter("router_generated_tokens", "Tokens generated", registry=r)
        self.inflight = Gauge("router_inflight_requests", "Chat requests being served now", registry=r)
        self.queue = Gauge("router_queue_depth", "Requests waiting for the generation thread", registry=r)
        self.batch_size = Histogram("router_batch_size", "Rows per generation batch",
                                    buckets=(1, 2, 4, 8, 16, 32), registry=r)
        self.invalid_json = Counter("router_invalid_json", "Answers that were not valid routing JSON", registry=r)
        self.intents = Counter("router_intent", "Routed intents (valid JSON answers)", ["intent"], registry=r)
        self.languages = Counter("router_language", "Detected languages (valid JSON answers)", ["language"], registry=r)
        self.cancelled = Counter("router_cancelled", "Generations stopped because the client went away", registry=r)
