"""Prometheus metrics, one registry per app (so two apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500, 1000)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "toolrun_http_requests", "HTTP requests answered, by API, endpoint and status code.",
            ["api", "endpoint", "status"], registry=r,
        )
        self.latency = Histogram(
            "toolrun_http_request_duration_seconds",
            "Time from request arrival to the last byte of the answer (streams included).",
            ["api", "endpoint"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.prompt_tokens = Counter("toolrun_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r)
        self.completion_tokens = Counter(
            "toolrun_completion_tokens", "Completion tokens generated; rate() of it is aggregate tokens/s.",
            ["model"], registry=r,
        )
        self.tokens_per_second = Histogram(
            "toolrun_request_tokens_per_second",
            "Completion tokens per second of each request, measured over its time holding a queue slot.",
            ["model"], buckets=_RATE_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge(
            "toolrun_queue_depth", "Requests admitted for a model and not yet finished (running plus waiting).",
            ["model"], registry=r,
        )
        self.rejected = Counter(
            "toolrun_rejected_requests", "Requests refused with 429 because the model's queue was full.",
            ["model"], registry=r,
        )
        self.disconnects = Counter(
            "toolrun_client_disconnects", "Requests whose client went away before the answer was complete.",
            ["api"], registry=r,
        )

    def observe_usage(self, model: str, usage: dict | None, seconds: float) -> None:
        if not usage:
            return
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)
        if completion and seconds > 0:
            self.tokens_per_second.labels(model).observe(completion / seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
