"""Throughput through toolrun vs the same requests sent straight to its upstream: the one copy of how
``bench_remote.py`` and ``bench_vllm.py`` run the two sides and summarise them.

Each round runs both sides one after the other, the order alternating between rounds (so that neither
side always meets a warmer or a colder upstream); a side is ``clients x requests`` requests with at most
``clients`` in flight. A round's ratio is toolrun's tokens/s over the direct side's; the summary keeps
every round and the medians.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

#: One request of a side: the completion tokens it got back.
OneRequest = Callable[[], Awaitable[int]]
SIDES = ("toolrun", "direct")


async def concurrently(one: OneRequest, clients: int, requests: int) -> tuple[float, int]:
    """``requests`` calls of ``one``, at most ``clients`` at a time: (seconds, tokens in all)."""
    gate = asyncio.Semaphore(clients)

    async def gated() -> int:
        async with gate:
            return await one()

    started = time.perf_counter()
    counts = await asyncio.gather(*(gated() for _ in range(requests)))
    return time.perf_counter() - started, sum(counts)


async def alternating_rounds(
    sides: Mapping[str, OneRequest], *, rounds: int, clients: int, per_client: int, label: str
) -> dict[str, Any]:
    """``rounds`` rounds of the ``toolrun`` and ``direct`` sides (see the module doc), each round printed
    as it ends (``label`` names the cell); the summary of :func:`summarise`."""
    rows = []
    for r in range(rounds):
        measured: dict[str, Any] = {}
        for who in SIDES if r % 2 == 0 else SIDES[::-1]:
            seconds, tokens = await concurrently(sides[who], clients, clients * per_client)
            measured[who] = {"seconds": round(seconds, 3), "tokens": tokens, "tok_s": round(tokens / seconds, 2)}
        measured["ratio"] = round(measured["toolrun"]["tok_s"] / measured["direct"]["tok_s"], 3)
        rows.append(measured)
        print(
            f"  {label}, round {r + 1}: toolrun {measured['toolrun']['tok_s']} tok/s, "
            f"direct {measured['direct']['tok_s']} tok/s → {measured['ratio']}×",
            flush=True,
        )
    return summarise(rows)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds, and the medians of each side's tokens/s and of the per-round ratios."""
    return {
        "rounds": rows,
        "toolrun_tok_s": statistics.median(r["toolrun"]["tok_s"] for r in rows),
        "direct_tok_s": statistics.median(r["direct"]["tok_s"] for r in rows),
        "median_ratio": statistics.median(r["ratio"] for r in rows),
    }
