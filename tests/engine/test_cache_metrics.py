"""/metrics reports the engines' prefix-cache statistics."""

from __future__ import annotations

from typing import Any

from toolrun.server._metrics import Metrics


class _EngineWithStats:
    def __init__(self) -> None:
        self.values = {
            "cache_hits": 3,
            "cache_misses": 1,
            "cache_evictions": 2,
            "cache_bytes": 4096,
            "cache_budget_bytes": 8192,
            "slots": 4,
            "slots_busy": 1,
            "not_a_metric": 7,
        }

    def stats(self) -> dict[str, int]:
        return self.values


def test_cache_statistics_are_read_at_each_scrape() -> None:
    metrics = Metrics()
    engine = _EngineWithStats()
    engines: dict[str, Any] = {"@local/model": engine, "@remote/other": object()}
    metrics.watch_engines(lambda: engines)
    text = metrics.render().decode()
    assert 'toolrun_prefix_cache_hits_total{model="@local/model"} 3.0' in text
    assert 'toolrun_prefix_cache_misses_total{model="@local/model"} 1.0' in text
    assert 'toolrun_prefix_cache_evictions_total{model="@local/model"} 2.0' in text
    assert 'toolrun_prefix_cache_bytes{model="@local/model"} 4096.0' in text
    assert 'toolrun_prefix_cache_budget_bytes{model="@local/model"} 8192.0' in text
    assert "@remote/other" not in text and "not_a_metric" not in text
    engine.values["cache_hits"] = 5
    assert 'toolrun_prefix_cache_hits_total{model="@local/model"} 5.0' in metrics.render().decode()


def test_the_servers_metrics_read_the_bindings_engines() -> None:
    """The collector above must be wired to the running server's engines, not only exist."""
    from starlette.testclient import TestClient

    from toolrun import AsyncAI
    from toolrun.ai import ModelEntry
    from toolrun.server import create_app

    ai = AsyncAI()
    ai.register(ModelEntry(name="@local/model", description="stats only"), _EngineWithStats())  # type: ignore[arg-type]
    with TestClient(create_app(ai), base_url="http://127.0.0.1") as client:
        text = client.get("/metrics").text
    assert 'toolrun_prefix_cache_budget_bytes{model="@local/model"} 8192.0' in text
