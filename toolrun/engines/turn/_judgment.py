"""Which calls a turn keeps: the checks every engine that parses calls itself applies the same way.

* The turn's first call (``check_relevance``) must fit the request: the user's words and the tool's
  share one, or the user said every value in it (:func:`toolrun._grounding.fits_request`). A small
  model holding tools opens a call for almost any question and fills a tool that does not fit with
  values of its own; the engine then answers in text instead.
* With ``ask_relevance``, a first call that passes is also put to the model as a yes/no question in a
  conversation of its own (:func:`relevance_question`), and kept only if its share of "yes" is high enough:
  higher (``ask_relevance_unsaid``) when the user did not say every value the call gives a required
  parameter (:func:`required_values_said`), as a model does when the request lacks what the tool needs.
  A call whose tool the user named, with every required value said (:func:`named_and_said`), is kept
  without the question.
* A further call tried after the model would have ended its turn (``try_another_call``) must bring a
  value the user said that no earlier call of the turn used, and every value in it must come from the
  conversation: the 0.5B model stops after one call of several, and, let go on, writes the same
  request again with a unit of its own or another tool on the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..._grounding import asks_something_new, fits_request, is_grounded, names_tool, schema_constants, tool_words
from ..._types import ToolSpec
from ..._wire import Message
from .._base import GenerationRequest


def _tool(request: GenerationRequest, name: str) -> ToolSpec | None:
    return next((t for t in request.tools if t.name == name), None)


def first_call_fits(call: Mapping[str, Any], request: GenerationRequest) -> bool:
    """Whether the turn's first call can be what the user asked for."""
    tool = _tool(request, call["name"])
    if tool is None:
        return False
    words = tool_words(tool.name, tool.description, tool.parameters)
    return fits_request(call["arguments"], words, request.messages, allowed=schema_constants(tool.parameters))


#: Asked of the model in a conversation of its own (``ask_relevance``), after the word check has passed.
#: Shown its own call right after writing it, a small model says yes to almost anything; asked afresh,
#: the function first and then the request, the 1.5B tells a tool made for the request from one that
#: merely shares its words. The wording fits actions as well as questions ("Would the result answer the
#: request?" declined "delete these columns"). The 0.5B gives about 0.45 to everything.
#: ``{parameters}`` is one line per parameter (:func:`parameter_lines`).
RELEVANCE_QUESTION = (
    "Function: {name}\nWhat it does: {description}\nParameters:{parameters}\n\n"
    'Request: "{request}"\n\nWas this function made for this request? Answer yes or no.'
)

#: Worked answers put before the question, toolrun's own (none from a benchmark): two tools made for their
#: request and two near the subject that are not (name, description, parameters, request, answer). With
#: them the 1.5B's "yes" to a tool that only shares a subject falls well below its "yes" to the right tool
#: (held-out BFCL, ``bench/tune_relevance.py``).
RELEVANCE_EXAMPLES: tuple[tuple[str, str, Mapping[str, str], str, bool], ...] = (
    (
        "get_stock_price",
        "Get the latest trading price of a company's stock.",
        {"ticker": "The stock's ticker symbol."},
        "Who is the CEO of Tesla?",
        False,
    ),
    (
        "get_weather",
        "Get the current weather for a city.",
        {"city": "The city's name."},
        "Is it raining in Lisbon right now?",
        True,
    ),
    (
        "convert_currency",
        "Convert an amount from one currency to another at today's exchange rate.",
        {
            "amount": "The amount to convert.",
            "source": "The currency to convert from.",
            "target": "The currency to convert to.",
        },
        "How has the euro's exchange rate against the dollar changed since 2010?",
        False,
    ),
    (
        "search_books",
        "Search a library catalogue for books by title or author.",
        {"query": "Words from the title or the author's name."},
        "Find me novels written by Jane Austen.",
        True,
    ),
)


def relevance_examples() -> list[Message]:
    """The worked answers, as the turns of a conversation that the question then continues."""
    turns: list[Message] = []
    for name, description, parameters, asked, answer in RELEVANCE_EXAMPLES:
        question = RELEVANCE_QUESTION.format(
            name=name, description=description, parameters=parameter_lines(parameters), request=asked
        )
        turns.append({"role": "user", "content": question})
        turns.append({"role": "assistant", "content": "yes" if answer else "no"})
    return turns


def relevance_messages(call: Mapping[str, Any], request: GenerationRequest) -> list[Message] | None:
    """The conversation that asks about the turn's first call: the worked answers, then
    :func:`relevance_question` (None when there is nothing to ask about)."""
    question = relevance_question(call, request)
    if question is None:
        return None
    return [*relevance_examples(), {"role": "user", "content": question}]


def relevance_question(call: Mapping[str, Any], request: GenerationRequest) -> str | None:
    """The yes/no question about the turn's first call, or None when there is nothing to ask about
    (no such tool, or no user message)."""
    tool = _tool(request, call["name"])
    asked = next((m.get("content") for m in reversed(request.messages) if m["role"] == "user"), None)
    if tool is None or not isinstance(asked, str) or not asked.strip():
        return None
    properties = tool.parameters.get("properties")
    described = {
        name: str(spec.get("description", "")) if isinstance(spec, Mapping) else ""
        for name, spec in (properties.items() if isinstance(properties, Mapping) else ())
    }
    return RELEVANCE_QUESTION.format(
        name=tool.name,
        description=tool.description.strip() or "(not described)",
        parameters=parameter_lines(described),
        request=asked.strip(),
    )


def parameter_lines(described: Mapping[str, str]) -> str:
    """The question's parameters, one ``- name: description`` line each (a name alone when undescribed).
    On held-out BFCL (``bench/tune_relevance.py``), at its best threshold, the 1.5B kept 517 of 520
    right tools and declined 168 of 200 irrelevance cases; on one run-on line joined by semicolons,
    518 and 165: about the same, and the lines read better. A description's own line breaks (OpenAPI
    descriptions are often Markdown) are folded into spaces, so that each parameter keeps one line."""
    if not described:
        return " none"
    folded = {name: " ".join(text.split()) for name, text in described.items()}
    return "".join(f"\n- {name}: {text}" if text else f"\n- {name}" for name, text in folded.items())


def required_values_said(call: Mapping[str, Any], request: GenerationRequest, grounding: str) -> bool:
    """Whether the user said every value the call gives its tool's required parameters (``grounding``: the
    conversation's text, from ``conversation_text``; the schema's own enums and defaults need not be said).

    A request that lacks what the tool needs ("the final price after a 25 % discount", and no price) gets a
    call all the same, with values of the model's own. On held-out BFCL the 1.5B's right tools whose values
    were not all said (percentages written as fractions, "2 million" as 2000000) still got a "yes" of 0.70 or
    more, while irrelevance calls with made-up values got less: such a call is asked to clear a higher bar."""
    tool = _tool(request, call["name"])
    if tool is None:
        return False
    required = tool.parameters.get("required")
    arguments = call["arguments"]
    needed = {name: arguments[name] for name in required or () if name in arguments}
    return is_grounded(needed, grounding, allowed=schema_constants(tool.parameters))


def named_and_said(call: Mapping[str, Any], request: GenerationRequest, grounding: str) -> bool:
    """Whether the user named what the call's tool is for (:func:`toolrun._grounding.names_tool`) and said
    every value it gives a required parameter (:func:`required_values_said`): such a call is kept without
    the relevance question.

    The question doubts some tools made for their request, where a parameter's description disagrees
    with what the user asked for (a circumference tool whose unit "Default is 'cm'" for a radius in inches,
    0.43). On 1,020 held-out BFCL cases (``bench/tune_relevance.py``) the calls the question declines
    although the user said every required value are 32 irrelevant ones and 5 right ones; the request
    names the tool in 3 of the right ones and in none of the irrelevant ones."""
    return names_tool(call["name"], request.messages) and required_values_said(call, request, grounding)


def further_call_kept(
    call: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]], request: GenerationRequest, grounding: str
) -> bool:
    """Whether a tried further call is kept (``grounding``: the conversation's text, from ``conversation_text``)."""
    if not asks_something_new(call["arguments"], (c["arguments"] for c in earlier), grounding):
        return False
    tool = _tool(request, call["name"])
    allowed = schema_constants(tool.parameters) if tool is not None else []
    return is_grounded(call["arguments"], grounding, allowed=allowed)
