"""Tools the judgement tests of ``tests/core`` share (imported as a sibling module, like ``remote_testing``)."""

from __future__ import annotations

# The seed's example, verbatim (Workers AI's traditional function calling docs).
SEED_TOOL = {
    "name": "getGithubUser",
    "description": "Provides publicly available information about someone with a GitHub account.",
    "parameters": {
        "type": "object",
        "properties": {"username": {"type": "string", "description": "The handle for the GitHub user account."}},
        "required": ["username"],
    },
}
SEED_MESSAGES = [{"role": "user", "content": "Who is Cloudflare on github?"}]

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
