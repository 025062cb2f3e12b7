"""Cloudflare's traditional function-calling example with a weather tool: the model turns "london" into a
latitude and longitude for ``getWeather``; the caller would then run the tool and send its result back.

    .venv/bin/python examples/traditional_weather.py
"""

from __future__ import annotations

import json
from typing import Any

from toolrun import AI, DEFAULT_MODEL


def main(ai: AI, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    response = ai.run(
        model,
        {
            "messages": [{"role": "user", "content": "what is the weather in london?"}],
            "tools": [
                {
                    "name": "getWeather",
                    "description": "Return the weather for a latitude and longitude",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "latitude": {
                                "type": "string",
                                "description": "The latitude for the given location",
                            },
                            "longitude": {
                                "type": "string",
                                "description": "The longitude for the given location",
                            },
                        },
                        "required": ["latitude", "longitude"],
                    },
                },
            ],
        },
    )
    return response


if __name__ == "__main__":
    with AI() as binding:
        print(json.dumps(main(binding), indent=2))
