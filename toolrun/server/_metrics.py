"""Prometheus metrics, one registry per app (so two apps in one process never collide)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500, 1000)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Every metric goes into this app's registry, never prometheus_client's global one.
        counter = partial(Counter, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        self.requests = counter(
            "toolrun_http_requests",
            "HTTP requests answered, by API, endpoint and status code.",
            ["api", "endpoint", "status"],
        )
        self.latency = histogram(
            "toolrun_http_request_duration_seconds",
            "Time from request arrival to the last byte of the answer (streams included).",
            ["api", "endpoint"],
            buckets=_LATENCY_BUCKETS,
        )
        self.prompt_tokens = counter("toolrun_prompt_tokens", "Prompt tokens processed.", ["model"])
        self.completion_tokens = counter(
            "toolrun_completion_tokens", "Completion tokens generated; rate() of it is aggregate tokens/s.", ["model"]
        )
        self.tokens_per_second = histogram(
            "toolrun_request_tokens_per_second",
            "Completion tokens per second of each request, measured over its time holding a queue slot.",
            ["model"],
            buckets=_RATE_BUCKETS,
        )
        self.queue_depth = gauge(
            "toolrun_queue_depth",
            "Requests admitted for a model and not yet finished (running plus waiting).",
            ["model"],
        )
        self.rejected = counter(
            "toolrun_rejected_requests", "Requests refused with 429 because the model's queue was full.", ["model"]
        )
        self.disconnects = counter(
            "toolrun_client_disconnects", "Requests whose client went away before the answer was complete.", ["api"]
        )

    def observe_usage(self, model: str, usage: Mapping[str, Any] | None, seconds: float) -> None:
        if not usage:
            return
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self.prompt_tokens.labels(model).inc(prompt)
        self.completion_tokens.labels(model).inc(completion)
        if completion and seconds > 0:
            self.tokens_per_second.labels(model).observe(completion / seconds)

    def watch_engines(self, engines: Callable[[], Mapping[str, Any]]) -> None:
        """Report the prefix-cache statistics of the engines ``engines()`` returns (model name → engine),
        read at each scrape from every engine that has a ``stats()`` method (local llama.cpp ones)."""
        self.registry.register(_EngineCacheCollector(engines))

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: stats() key → (metric name, help), for the statistics that only grow (they get Prometheus' ``_total`` suffix)
_CACHE_COUNTERS: dict[str, tuple[str, str]] = {
    "cache_hits": ("toolrun_prefix_cache_hits", "Requests that started from a warm prefix (slot or RAM)."),
    "cache_misses": ("toolrun_prefix_cache_misses", "Requests whose whole prompt was evaluated."),
    "cache_reused_tokens": (
        "toolrun_prefix_cache_reused_tokens",
        "Prompt tokens taken from warm prefixes instead of evaluated.",
    ),
    "cache_restores": ("toolrun_prefix_cache_restores", "Warm prefixes copied into a slot from RAM or another slot."),
    "cache_saves": ("toolrun_prefix_cache_saves", "Warm prefixes saved from a slot into RAM."),
    "cache_evictions": (
        "toolrun_prefix_cache_evictions",
        "Warm prefixes dropped from RAM, least recently used first, for room.",
    ),
    "disk_hits": ("toolrun_prefix_disk_hits", "Prompt prefixes (system prompt and tools) restored from disk."),
    "disk_misses": ("toolrun_prefix_disk_misses", "Requests that looked on disk for a long prefix, none found."),
    "disk_restored_tokens": ("toolrun_prefix_disk_restored_tokens", "Prompt tokens restored from disk."),
    "disk_writes": ("toolrun_prefix_disk_writes", "Prompt prefixes written to disk."),
    "disk_rejected": ("toolrun_prefix_disk_rejected", "Prefix files deleted unread: corrupt or mismatched."),
    "disk_evictions": ("toolrun_prefix_disk_evictions", "Prefix files deleted for room."),
    "spec_forced_tokens": (
        "toolrun_speculative_forced_tokens",
        "Tokens of text a call's grammar forced, evaluated as drafts (grammar fast-forward).",
    ),
    "spec_forced_accepted_tokens": (
        "toolrun_speculative_forced_accepted_tokens",
        "Forced draft tokens the model's own sampling kept.",
    ),
    "spec_drafted_tokens": (
        "toolrun_speculative_drafted_tokens",
        "Tokens drafted by prompt lookup (copied from the output, a call skeleton or the prompt).",
    ),
    "spec_accepted_tokens": ("toolrun_speculative_accepted_tokens", "Lookup draft tokens kept."),
    "spec_verify_batches": ("toolrun_speculative_verify_batches", "Batches that evaluated a draft."),
}
#: stats() key → (metric name, help), for the statistics that go up and down.
_CACHE_GAUGES: dict[str, tuple[str, str]] = {
    "cache_bytes": ("toolrun_prefix_cache_bytes", "Bytes of warm prefixes held in RAM."),
    "cache_budget_bytes": ("toolrun_prefix_cache_budget_bytes", "The RAM budget for warm prefixes."),
    "cache_entries": ("toolrun_prefix_cache_entries", "Warm prefixes held in RAM."),
    "slots": ("toolrun_slots", "Sequences the model decodes together (llama-server's slots)."),
    "slots_busy": ("toolrun_slots_busy", "Slots running a request now."),
    "slot_kv_bytes": ("toolrun_slot_kv_bytes", "Bytes of the KV cache allocated for the slots."),
    "queued": ("toolrun_engine_queued", "Requests waiting for a free slot."),
}


class _EngineCacheCollector(Collector):
    def __init__(self, engines: Callable[[], Mapping[str, Any]]) -> None:
        self._engines = engines

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            key: CounterMetricFamily(name, doc, labels=["model"]) for key, (name, doc) in _CACHE_COUNTERS.items()
        }
        families.update(
            (key, GaugeMetricFamily(name, doc, labels=["model"])) for key, (name, doc) in _CACHE_GAUGES.items()
        )
        for model, engine in sorted(self._engines().items()):
            stats = getattr(engine, "stats", None)
            if not callable(stats):
                continue
            for key, value in stats().items():
                family = families.get(key)
                if family is not None:
                    family.add_metric([model], float(value))
        yield from families.values()
