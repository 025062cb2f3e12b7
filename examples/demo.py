"""toolrun demo (`make demo`): the seed's function-calling examples on the embedded default model, offline.

Default sampling (Workers AI's temperature 0.6), the seed's own prompts and tool descriptions:

1. traditional — the model asks for getGithubUser, we run it, send the result back, and it answers;
2. traditional — the weather tool: London becomes a latitude and longitude;
3. embedded — run_with_tools runs ai-utils' get-weather function and streams the answer;
4. embedded — tools made from GitHub's OpenAPI description, with the seed's override matcher.

api.github.com is a loopback stand-in (examples/_offline.py): nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import embedded_openapi_github
import embedded_weather
import traditional_github
import traditional_weather

from toolrun import AI, DEFAULT_MODEL, AsyncAI


def heading(title: str) -> float:
    print(f"\n── {title} " + "─" * max(0, 66 - len(title)))
    return time.perf_counter()


def took(started: float) -> str:
    return f"({time.perf_counter() - started:.1f} s)"


def main() -> None:
    print(f"model: {DEFAULT_MODEL} (llama.cpp, CPU, offline)")
    with AI() as ai:
        started = heading("1. Traditional: getGithubUser")
        out = traditional_github.main(ai)
        call = out["tool_call"]
        print("user:      Who is Cloudflare on github?")
        print(f"tool call: {call['name']}({json.dumps(call['arguments'])})")
        print(f"result:    {json.dumps(out['github'])[:90]}…")
        print(f"assistant: {out['final']['response']}  {took(started)}")

        started = heading("2. Traditional: getWeather (latitude, longitude)")
        response = traditional_weather.main(ai)
        print("user:      what is the weather in london?")
        for call in response["tool_calls"]:
            print(f"tool call: {call['name']}({json.dumps(call['arguments'])})  {took(started)}")
        if not response["tool_calls"]:
            print(f"assistant: {response['response']}  {took(started)}")

    async def embedded() -> None:
        async with AsyncAI() as aai:
            started = heading("3. Embedded: run_with_tools with a Python function")
            print("user:      What's the weather in Mumbai, India?")
            answer, _ = await embedded_weather.main(aai)
            print(f"assistant: {answer.strip()}  {took(started)}")

            started = heading("4. Embedded: tools from GitHub's OpenAPI description")
            print("user:      Who is Cloudflare on github?")
            result = await embedded_openapi_github.main(aai)
            for message in result["messages"]:
                for tool_call in message.get("tool_calls") or ():
                    fn = tool_call["function"]
                    print(f"tool call: {fn['name']}({fn['arguments']})")
            print(f"assistant: {result['response']}  {took(started)}")

    asyncio.run(embedded())


if __name__ == "__main__":
    main()
