"""Tools the judgement tests of ``tests/core`` share (imported as a sibling module, like ``remote_testing``;
the seed's example is in ``tests/seed_testing``)."""

from __future__ import annotations

# BFCL's first simple case, with its parameters described: the tool the relevance tests hold up to requests.
TRIANGLE_AREA = {
    "name": "calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {
        "type": "object",
        "properties": {
            "base": {"type": "number", "description": "The base of the triangle."},
            "height": {"type": "number", "description": "The height of the triangle."},
        },
        "required": ["base", "height"],
    },
}
#: A request the area tool was made for, with every value said.
AREA_REQUEST = [{"role": "user", "content": "What is the area of a triangle with a base of 10cm and a height of 5cm?"}]
#: The same, without the word "area": the tool is not named, so the 1.5B is asked (``ask_relevance``).
COVER_REQUEST = [
    {"role": "user", "content": "How much ground does a triangle with a base of 10cm and a height of 5cm cover?"}
]
