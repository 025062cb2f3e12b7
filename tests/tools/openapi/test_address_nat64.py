"""IPv6 addresses that carry an IPv4 address (NAT64, SIIT, mapped, 6to4, Teredo) are checked as that IPv4 address.

A translator or tunnel on the way delivers such a packet to the embedded IPv4
address, so ``[64:ff9b:1:a9fe:a9:fe00::]`` reaches 169.254.169.254 as surely as
the dotted form does. Each form is tried through a real document: the server
URL is refused when tools are made, and a name that resolves to the address is
refused when connecting.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from toolrun._errors import OpenAPISpecError
from toolrun.tools.openapi import _address, create_tools_from_openapi_spec

METADATA = ipaddress.IPv4Address("169.254.169.254")
AZURE = ipaddress.IPv4Address("168.63.129.16")


def teredo(client: ipaddress.IPv4Address, server: str = "65.54.227.120") -> str:
    """A Teredo address (2001::/32): server IPv4, flags, port, then the client IPv4 with every bit inverted."""
    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (0x8000 << 48) | (0xFFFF << 32)
    return str(ipaddress.IPv6Address(value | (int(client) ^ 0xFFFFFFFF)))


# (form, address): every one embeds a refused IPv4 address.
EMBEDDING = [
    ("NAT64 well-known /96", "64:ff9b::a9fe:a9fe"),
    ("NAT64 well-known /96, dotted", "64:ff9b::169.254.169.254"),
    ("NAT64 local-use /96", "64:ff9b:1::a9fe:a9fe"),
    ("NAT64 local-use /96 in a sub-prefix", "64:ff9b:1:1234:5678::a9fe:a9fe"),
    ("NAT64 local-use /48", "64:ff9b:1:a9fe:a9:fe00::"),
    ("NAT64 local-use /56", "64:ff9b:1:12a9:fe:a9fe::"),
    ("NAT64 local-use /64", "64:ff9b:1:1234:a9:fea9:fe00:0"),
    ("NAT64 local-use, Azure /96", "64:ff9b:1::a83f:8110"),
    ("IPv4-mapped", "::ffff:169.254.169.254"),
    ("IPv4-mapped, hex", "::ffff:a9fe:a9fe"),
    ("IPv4-compatible", "::169.254.169.254"),
    ("SIIT IPv4-translated", "::ffff:0:169.254.169.254"),
    ("SIIT IPv4-translated, hex", "::ffff:0:a9fe:a9fe"),
    ("6to4", "2002:a9fe:a9fe::1"),
    ("Teredo", teredo(METADATA)),
    ("Teredo, Azure", teredo(AZURE)),
]

# Same forms, harmless IPv4 addresses inside: still allowed.
HARMLESS = [
    "64:ff9b::5db8:d822",  # 93.184.216.34
    "64:ff9b:1::5db8:d822",
    "::ffff:0:5db8:d822",
    "2002:5db8:d822::1",
    teredo(ipaddress.IPv4Address("93.184.216.34")),
    "2606:4700::1111",
    "::1",
]


def spec_for(host: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "servers": [{"url": f"http://{host}/latest"}],
        "paths": {"/meta-data": {"get": {"operationId": "steal"}}},
    }


@pytest.mark.parametrize("form, address", EMBEDDING, ids=[form for form, _ in EMBEDDING])
async def test_an_embedded_metadata_address_in_a_server_url_is_refused(form: str, address: str) -> None:
    with pytest.raises(OpenAPISpecError) as info:
        await create_tools_from_openapi_spec(spec_for(f"[{address}]"))
    assert info.value.where == "servers[0]"
    message = str(info.value)
    assert "link-local" in message or "cloud metadata address" in message, message
    assert "allow_link_local=True" in message
    (tool,) = await create_tools_from_openapi_spec(spec_for(f"[{address}]"), allow_link_local=True)
    assert tool.name == "steal"


@pytest.mark.parametrize("address", HARMLESS)
async def test_the_same_forms_with_an_ordinary_ipv4_address_are_allowed(address: str) -> None:
    (tool,) = await create_tools_from_openapi_spec(spec_for(f"[{address}]"))
    assert tool.name == "steal"


@pytest.mark.parametrize("form, address", EMBEDDING, ids=[form for form, _ in EMBEDDING])
async def test_a_name_resolving_to_an_embedded_metadata_address_is_refused_when_connecting(
    form: str, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[Any]:  # the attacker's DNS
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    monkeypatch.setattr(_address, "resolve", resolve)
    (tool,) = await create_tools_from_openapi_spec(spec_for("rebound.test"))
    answer = await tool.function({})
    assert "refused to connect: rebound.test" in answer, answer


def test_the_embedded_address_is_named_in_the_refusal() -> None:
    reason = _address.refusal("[64:ff9b:1:a9fe:a9:fe00::]")
    assert reason is not None and "(169.254.169.254)" in reason
    reason = _address.refusal(f"[{teredo(AZURE)}]")
    assert reason is not None and "(168.63.129.16) is a cloud metadata address" in reason
