"""Remote engines: models served elsewhere, behind everything toolrun does above the engine.

``OpenAICompatibleEngine`` talks to vLLM, SGLang, llama.cpp's server,
llama-cpp-python's server or any OpenAI-compatible endpoint, either leaving
tool-call parsing to it (``native``) or keeping toolrun's own parsing and
grammar (``toolrun``); ``WorkersAIEngine`` runs Cloudflare's hosted models by
their Workers AI names. Both route over one or more base URLs with pooled
connections, retries and passive health checks (:class:`UpstreamPool`).
"""

from ._http import RetryPolicy, Timeouts, UpstreamPool
from ._openai import DIALECTS, OpenAICompatibleEngine, ToolParsing, UpstreamKind, dialect_for
from ._template import read_chat_template
from ._workers_ai import DEFAULT_BASE_URL, WorkersAICredentials, WorkersAIEngine

__all__ = [
    "DEFAULT_BASE_URL",
    "DIALECTS",
    "OpenAICompatibleEngine",
    "RetryPolicy",
    "Timeouts",
    "ToolParsing",
    "UpstreamKind",
    "UpstreamPool",
    "WorkersAICredentials",
    "WorkersAIEngine",
    "dialect_for",
    "read_chat_template",
]
