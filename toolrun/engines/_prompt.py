"""A request as prompt text, for engines that complete raw text (llama.cpp here, or a remote
``/completion`` endpoint in toolrun's own tool-parsing mode)."""

from __future__ import annotations

from ..formats import ControlTokens, ShieldedPrompt, ToolCallFormat, fold_tool_results, render_chat_template
from ._base import GenerationRequest


def render_prompt(
    fmt: ToolCallFormat,
    template: str,
    request: GenerationRequest,
    *,
    control: ControlTokens,
    bos_token: str = "",
    eos_token: str = "",
    parallel_hint: str = "",
) -> ShieldedPrompt:
    """The prompt for ``request`` through the model's chat ``template`` (tools rendered the format's way).

    Every string the request carries is shielded first (:mod:`toolrun.formats._shield`): only the
    template's own text may produce ``control`` tokens. Without tools to call, earlier tool results are
    folded into the user's turn (:func:`~toolrun.formats.fold_tool_results`): small models answer from that
    instead of repeating the call. ``parallel_hint`` (the catalog's) follows the tool list when the
    request offers one tool and allows several calls of it: offered several tools, the 1.5B model read
    it as leave to call another tool as well (held-out BFCL ``multiple``: one case lost, none gained).
    """
    if request.raw_prompt is not None:
        # Workers AI's ``raw``: the caller writes the model's own format, control tokens included.
        return ShieldedPrompt.trusted(request.raw_prompt, control)
    literals: list[str] = []
    tools = control.shield(fmt.template_tools(request.tools), literals) if request.uses_tools else None
    messages = request.messages if request.uses_tools else fold_tool_results(request.messages)
    prompt = render_chat_template(
        template,
        control.shield(messages, literals),
        tools=tools,
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if parallel_hint and request.may_add_calls and len(request.tools) == 1:
        prompt = fmt.add_instructions(prompt, parallel_hint)
    return ShieldedPrompt(prompt, tuple(literals), control)
