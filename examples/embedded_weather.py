"""ai-utils' own ``runWithTools`` example in Python: the model calls the ``get-weather`` function, toolrun
runs it and streams the final answer (strict validation, one recursive round, ``autoTrimTools``).

    .venv/bin/python examples/embedded_weather.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from toolrun import DEFAULT_MODEL, AsyncAI, auto_trim_tools, run_with_tools

calls: list[str] = []


async def get_weather(args: dict[str, Any]) -> str:
    # fetch weather data from an API
    city = args["city"]
    print("value from llm", city)
    calls.append(city)
    return city


async def main(ai: AsyncAI, model: str = DEFAULT_MODEL) -> tuple[str, Any]:
    r = await run_with_tools(
        ai,
        model,
        {
            "messages": [{"role": "user", "content": "What's the weather in Mumbai, India?"}],
            "tools": [
                {
                    "name": "get-weather",
                    "description": "Gets weather information of a particular city",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {
                                "type": "string",
                                "description": "The city name",
                            },
                        },
                        "required": ["city"],
                    },
                    "function": get_weather,
                },
            ],
        },
        strict_validation=True,
        max_recursive_tool_runs=1,
        stream_final_response=True,
        # If there's too many tools, you can enable this
        trim_function=auto_trim_tools,
    )
    text = ""
    async for event in r:  # type: ignore[union-attr]
        text += event.get("response") or ""
    return text, r


if __name__ == "__main__":

    async def _run() -> None:
        async with AsyncAI() as ai:
            answer, _ = await main(ai)
        print(answer)

    asyncio.run(_run())
