"""The seed's example, verbatim (Workers AI's traditional function-calling docs): the one copy the tests
and benchmarks share (a sibling of ``conftest.py``, so importable from every test folder; the benchmarks
put ``tests/`` on their path)."""

from __future__ import annotations

SEED_TOOL = {
    "name": "getGithubUser",
    "description": "Provides publicly available information about someone with a GitHub account.",
    "parameters": {
        "type": "object",
        "properties": {"username": {"type": "string", "description": "The handle for the GitHub user account."}},
        "required": ["username"],
    },
}
SEED_PROMPT = "Who is Cloudflare on github?"
SEED_MESSAGES = [{"role": "user", "content": SEED_PROMPT}]

#: A call with five required arguments (strings, an integer, an enum whose members share a prefix): what the
#: speculative-decoding tests and ``bench/bench_fast_calls.py`` both measure beside the seed's one argument.
FLIGHTS_TOOL = {
    "name": "search_flights",
    "description": "Search flights.",
    "parameters": {
        "type": "object",
        "properties": {
            "origin": {"type": "string"},
            "destination": {"type": "string"},
            "date": {"type": "string", "description": "YYYY-MM-DD"},
            "passengers": {"type": "integer"},
            "cabin": {"type": "string", "enum": ["economy", "economy_plus", "business"]},
        },
        "required": ["origin", "destination", "date", "passengers", "cabin"],
    },
}
FLIGHTS_MESSAGES = [
    {"role": "user", "content": "Find business class flights from Lisbon to Tokyo on 2026-03-14 for 2 passengers."}
]
