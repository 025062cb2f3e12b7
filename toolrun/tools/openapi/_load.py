"""Getting an OpenAPI document's bytes: from a URL, a file, or the text itself."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ..._errors import OpenAPISpecError
from ._address import check_url, new_client
from ._read import BodyError, read_capped
from ._redirect import InvalidRedirect, redirect_target, url_origin

MAX_SPEC_BYTES = 64 * 1024 * 1024
MAX_SPEC_REDIRECTS = 10
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


async def read_source(
    spec: Any,
    *,
    client: httpx.AsyncClient | None,
    timeout: float,  # noqa: ASYNC109 - handed to httpx, which applies it per phase
    max_bytes: int = MAX_SPEC_BYTES,
    allow_link_local: bool = False,
) -> tuple[Any, str | None, str]:
    """``(content, source_url, label)``: the document's text/bytes (or an already parsed mapping),
    the URL it was served from (relative server URLs resolve against it), and a label for errors."""
    if isinstance(spec, Mapping):
        return spec, None, "the given mapping"
    if isinstance(spec, httpx.URL):
        spec = str(spec)
    if isinstance(spec, os.PathLike):
        return await asyncio.to_thread(_read_file, Path(spec), max_bytes), None, str(spec)
    if isinstance(spec, (bytes, bytearray, memoryview)):
        return bytes(spec), None, "the given text"
    if not isinstance(spec, str):
        raise OpenAPISpecError(
            f"spec must be a URL, a file path, the document's text or a mapping, not {type(spec).__name__}",
            where="spec",
        )
    # Only the start is looked at: copying a 13 MB string (strip) costs more than parsing it.
    head = spec[:4096].strip().lstrip("\ufeff")
    if not head:
        raise OpenAPISpecError("the document is empty", where="spec")
    one_line = len(spec) <= 4096 and "\n" not in head
    if one_line and _URL.match(head):
        content, final_url = await _fetch(
            head, client=client, timeout=timeout, max_bytes=max_bytes, allow_link_local=allow_link_local
        )
        return content, final_url, head
    if one_line and not head.startswith(("{", "[")):
        # One line that is not JSON: a file path, unless it reads like a one-line YAML document.
        found = await asyncio.to_thread(_read_file_if_there, head, max_bytes)
        if found is not None:
            return found
        if not re.match(r"^\s*(openapi|swagger)\s*:", head):
            raise OpenAPISpecError(
                f"{head[:200]!r} is not an http(s) URL, an existing file or an OpenAPI document",
                where="spec",
            )
    return spec, None, "the given text"


def _read_file_if_there(name: str, max_bytes: int) -> tuple[bytes, None, str] | None:
    path = Path(name).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # a name too long for the file system is text, not a path
        is_file = False
    return (_read_file(path, max_bytes), None, str(path)) if is_file else None


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise OpenAPISpecError(f"{path} is {size} bytes, more than the {max_bytes}-byte limit", where="spec")
        with path.open("rb") as file:
            # The size a file reports is not always what it holds (/proc files say 0): read to the limit.
            content = file.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise OpenAPISpecError(f"{path} is more than the {max_bytes}-byte limit", where="spec")
        return content
    except OpenAPISpecError:
        raise
    except OSError as exc:
        raise OpenAPISpecError(f"cannot read {path}: {exc.strerror or exc}", where="spec") from None


async def _fetch(
    url: str,
    *,
    client: httpx.AsyncClient | None,
    timeout: float,  # noqa: ASYNC109
    max_bytes: int,
    allow_link_local: bool,
) -> tuple[bytes, str]:
    own = client is None
    http = client or new_client(allow_link_local=allow_link_local, timeout=timeout)
    try:
        current = httpx.URL(url)
        # Redirects are followed here, one at a time, so that each hop is checked like the first.
        for hop in range(MAX_SPEC_REDIRECTS + 1):
            if not allow_link_local:
                problem = check_url(current, f"fetching {url} redirected to" if hop else "the document's URL")
                if problem:
                    raise OpenAPISpecError(problem, where="spec")
            request = http.build_request(
                "GET",
                current,
                timeout=timeout,
                headers={"Accept": "application/json, application/yaml;q=0.9, */*;q=0.5"},
            )
            # As httpx does when it follows redirects: credentials never go on to another origin.
            crossed = url_origin(current) != url_origin(httpx.URL(url))
            if crossed:
                request.headers.pop("Authorization", None)
            resp = await http.send(
                request, stream=True, follow_redirects=False, auth=None if crossed else httpx.USE_CLIENT_DEFAULT
            )
            try:
                try:
                    target = redirect_target(resp, current)
                except InvalidRedirect as exc:
                    raise OpenAPISpecError(
                        f"fetching {url} redirected to an invalid URL {exc.location[:200]!r}", where="spec"
                    ) from None
                if target is not None:
                    current = target
                    if current.scheme not in ("http", "https"):
                        raise OpenAPISpecError(
                            f"fetching {url} redirected to {current.scheme!r}, not http(s)", where="spec"
                        )
                    continue
                if not resp.is_success:
                    raise OpenAPISpecError(
                        f"fetching {url} answered HTTP {resp.status_code} {resp.reason_phrase}".rstrip(), where="spec"
                    )
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise OpenAPISpecError(
                        f"{url} is {declared} bytes, more than the {max_bytes}-byte limit", where="spec"
                    )
                try:
                    content, truncated = await read_capped(resp, max_bytes)
                except BodyError as exc:
                    raise OpenAPISpecError(f"fetching {url}: {exc}", where="spec") from None
                if truncated:
                    raise OpenAPISpecError(f"{url} is more than the {max_bytes}-byte limit", where="spec")
                return content, str(resp.url)
            finally:
                await resp.aclose()
        raise OpenAPISpecError(f"fetching {url} was redirected more than {MAX_SPEC_REDIRECTS} times", where="spec")
    except OpenAPISpecError:
        raise
    except httpx.TimeoutException:
        raise OpenAPISpecError(f"fetching {url} timed out after {timeout:g}s", where="spec") from None
    except httpx.HTTPError as exc:
        raise OpenAPISpecError(f"fetching {url} failed: {exc or type(exc).__name__}", where="spec") from None
    except ValueError as exc:  # idna's error for a broken "xn--" host in a Location header
        raise OpenAPISpecError(f"fetching {url} failed: {type(exc).__name__}: {exc}", where="spec") from None
    finally:
        if own:
            await http.aclose()
