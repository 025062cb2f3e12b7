"""A ``tools/call`` result as the text of the tool message the model reads.

Text blocks are joined; structured content is written as JSON unless a text
block already says the same (the spec asks servers to send both); images,
audio and binary resources are summarised by type, MIME type, size and URI,
never pasted as base64. ``isError`` results, protocol errors and timeouts
become ``{"error": "..."}``, the one shape in which toolrun's tools report a
failure to the model. Everything is cut to ``max_response_bytes`` the way the
OpenAPI tools cut a response, and says so.
"""

from __future__ import annotations

import json
from typing import Any

_to_json = json.JSONEncoder(ensure_ascii=False).encode
EMPTY_RESULT = "[the tool returned no content]"


#: Where :func:`trim_raw_result` notes, in a result's ``_meta``, how many content items it left unread.
OMITTED_KEY = "toolrun/omitted_content_items"
# A content item that is not text is summarised in a line of at least this many characters.
_SUMMARY_CHARS = 16


def trim_raw_result(result: dict[str, Any], limit: int) -> dict[str, Any]:
    """A raw ``tools/call`` result (the JSON-RPC ``result`` object, before the SDK validates it) with only
    as many content items as can show in ``limit`` bytes; the number left out goes in ``_meta``.

    The SDK turns every content item into a pydantic object before toolrun sees any of them:
    200,000 one-character items cost hundreds of MB to be cut to 32 KiB afterwards.
    """
    content = result.get("content")
    if not isinstance(content, list):
        return result
    shown = 0
    for kept, item in enumerate(content):
        if shown > limit:  # what is kept already fills the limit (characters are at least a byte each)
            meta = result.get("_meta")
            return {
                **result,
                "content": content[:kept],
                "_meta": {**(meta if isinstance(meta, dict) else {}), OMITTED_KEY: [len(content) - kept, len(content)]},
            }
        text = item.get("text") if isinstance(item, dict) else None
        shown += 1 + (len(text) if isinstance(text, str) else _SUMMARY_CHARS)
    return result


def result_text(result: Any, limit: int) -> str:
    """The model's text for a ``CallToolResult``: the content, or ``{"error": ...}`` when ``isError``.

    Conversion stops once the text is over ``limit``: the rest would be cut anyway.
    """
    parts: list[str] = []
    size = 0
    omitted: tuple[int, int] | None
    structured = result.structured_content
    said = structured is None
    blocks = result.content or ()
    for read, block in enumerate(blocks):
        if size > limit:
            omitted = (len(blocks) - read, len(blocks))
            break
        kind = getattr(block, "type", None)
        if kind != "text":
            parts.append(_summary(block, kind))
        elif not said and (copy := _copy_of(block.text, structured)):
            # The text copy of the structured content: indented JSON is written compactly; a bare
            # value that the server wrapped as {"result": value} stays as the server wrote it.
            parts.append(_structured_json(structured) if copy == "json" else block.text)
            said = True
        else:
            parts.append(block.text)
        size += len(parts[-1]) + 1
    else:
        omitted = _omitted_before(result)
        if not said and size <= limit:
            parts.append(_structured_json(structured))
    text = "\n".join(parts)
    if result.is_error:
        return error_text(text or "the tool reported an error without a message", limit, omitted)
    return capped(text, limit, omitted) if text else EMPTY_RESULT


def _omitted_before(result: Any) -> tuple[int, int] | None:
    """The (unread, total) content items :func:`trim_raw_result` noted in the result's ``_meta``."""
    meta = getattr(result, "meta", None)
    noted = meta.get(OMITTED_KEY) if isinstance(meta, dict) else None
    if isinstance(noted, list) and len(noted) == 2 and all(type(n) is int for n in noted):
        return noted[0], noted[1]
    return None


def error_text(message: str, limit: int, omitted: tuple[int, int] | None = None) -> str:
    """``{"error": message}``, the message cut to ``limit`` bytes like a result."""
    return _to_json({"error": capped(message, limit, omitted)})


def capped(text: str, limit: int, omitted: tuple[int, int] | None = None) -> str:
    """``text`` cut to its first ``limit`` UTF-8 bytes (never mid-character), marked as the OpenAPI tools mark it.

    ``omitted`` is ``(unread, total)`` content items that were left out before the text was made.
    """
    if len(text) * 4 <= limit and omitted is None:  # cannot be over: skip the encoding
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit and omitted is None:
        return text
    kept = data[:limit].decode("utf-8", "ignore")  # a cut character is dropped, not garbled
    if omitted is None:
        return kept + f"\n[response truncated: showing the first {limit} bytes of {len(data)} bytes]"
    unread, total = omitted
    return kept + (
        f"\n[response truncated: showing the first {min(limit, len(data))} bytes; "
        f"{unread:,} of its {total:,} content items were not read]"
    )


def _summary(block: Any, kind: Any) -> str:
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_base64_size(block.data):,} bytes]"
    if kind == "resource_link":
        details = [str(v) for v in (getattr(block, "name", None), getattr(block, "mime_type", None)) if v]
        size = getattr(block, "size", None)
        if isinstance(size, int):
            details.append(f"{size:,} bytes")
        return f"[resource link: {block.uri}" + (f" ({', '.join(details)})" if details else "") + "]"
    if kind == "resource":
        resource = block.resource
        mime = getattr(resource, "mime_type", None)
        text = getattr(resource, "text", None)
        if isinstance(text, str):  # readable text: the model gets it, under a header naming its source
            return f"[resource: {resource.uri}{', ' + mime if mime else ''}]\n{text}"
        size = _base64_size(getattr(resource, "blob", "") or "")
        return f"[resource: {resource.uri}{', ' + mime if mime else ''}, {size:,} bytes]"
    return f"[{kind} content]"


def _base64_size(data: str) -> int:
    """Bytes that base64 text decodes to, without decoding it."""
    length = len(data.rstrip("="))
    return length * 3 // 4


def _structured_json(value: Any) -> str:
    try:
        return _to_json(value)
    except (TypeError, ValueError):  # NaN and friends are JSON here; anything else is not
        return json.dumps(value, default=str)


def _copy_of(text: str, structured: Any) -> str | None:
    """Whether a text block carries the structured content: ``"json"`` (its JSON), ``"value"``
    (the bare value of a ``{"result": value}`` wrapper, as SDKs wrap plain return values), or None."""
    wrapped = structured.get("result", _NOTHING) if isinstance(structured, dict) and len(structured) == 1 else _NOTHING
    if isinstance(wrapped, str) and text == wrapped:
        return "value"
    if not text.lstrip().startswith(("{", "[", '"')) and wrapped is _NOTHING:
        return None  # cannot be the JSON of an object or list: not worth parsing
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    if decoded == structured:
        return "json"
    return "value" if wrapped is not _NOTHING and decoded == wrapped else None


_NOTHING = object()
