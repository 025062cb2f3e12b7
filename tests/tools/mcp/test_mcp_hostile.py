"""A hostile MCP server's result is cut to the size limit while it is read, not after it was all made into objects.

The server is real (mcp_test_servers.py's ``flood``, over stdio): one result of
200,000 one-character text items, about 6 MB of JSON. Memory is measured with
tracemalloc in this process, where the SDK's client reads and parses it.
"""

from __future__ import annotations

import sys
import tracemalloc

from mcp_testing import SERVERS

from toolrun.tools import create_tools_from_mcp
from toolrun.tools.mcp._spec import MAX_RESPONSE_BYTES

FLOOD = [sys.executable, "-c", "import mcp_test_servers as s; s.run_flood()"]
# Peak Python allocations while one call is read. The SDK's own parse of the 6 MB line into
# dicts is about 70 MB of it and cannot be avoided (it takes no size limit); turning all
# 200,000 items into pydantic objects before the cap applied made it about 220 MB.
PEAK_BOUND_MB = 120


async def test_a_result_of_200000_tiny_items_is_capped_while_it_is_read() -> None:
    async with create_tools_from_mcp(command=FLOOD, cwd=str(SERVERS.parent)) as tools:
        (flood,) = tools
        tracemalloc.start()
        try:
            text = await flood.function({})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < PEAK_BOUND_MB * 1e6, f"peak {peak / 1e6:.0f} MB"
    body, note = text.rsplit("\n[", 1)
    assert len(body.encode()) == MAX_RESPONSE_BYTES
    assert set(body.strip("\n").split("\n")) == {"x"}
    assert note.startswith(f"response truncated: showing the first {MAX_RESPONSE_BYTES} bytes; ")
    assert note.endswith(" of its 200,000 content items were not read]")
