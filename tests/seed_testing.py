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
