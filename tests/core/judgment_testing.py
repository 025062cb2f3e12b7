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
