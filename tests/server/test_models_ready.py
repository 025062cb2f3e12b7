"""``/v1/models`` and model search say which models answer here without a download, and chat responses name the
model that answered, not the alias asked for (issue #31 item 5)."""

from __future__ import annotations

import httpx
import openai
from server_testing import SCRIPTED, scripted_ai

HERMES = "@hf/nousresearch/hermes-2-pro-mistral-7b"  # a built-in whose weights the test machine never pulls


def test_models_say_which_are_ready_and_the_openai_sdk_reads_it(start_server) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    listed = {model.id: model for model in client.models.list()}
    assert listed[SCRIPTED].model_extra == {"ready": True, "function_calling": True, "context_window": 8192}
    assert listed[HERMES].model_extra["ready"] is False
    assert client.models.retrieve(HERMES).model_extra["ready"] is False
    found = httpx.get(server.url + "/client/v4/accounts/local/ai/models/search", params={"search": "hermes"}).json()
    assert [(m["name"], m["ready"]) for m in found["result"]] == [(HERMES, False)]


def test_a_chat_response_names_the_resolved_model(start_server) -> None:
    ai, _ = scripted_ai()
    ai.catalog.alias("scripted-alias", SCRIPTED)
    server = start_server(ai)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    messages = [{"role": "user", "content": "hi"}]
    answer = client.chat.completions.create(model="scripted-alias", messages=messages)  # type: ignore[arg-type]
    assert answer.model == SCRIPTED
    chunks = list(client.chat.completions.create(model="scripted-alias", messages=messages, stream=True))  # type: ignore[arg-type]
    assert {chunk.model for chunk in chunks} == {SCRIPTED}
