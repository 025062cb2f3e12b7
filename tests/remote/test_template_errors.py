"""A remote model's unusable chat_template is the operator's problem: the error names what is wrong, never the
file's path (a client of toolrun serve may read it); the path goes to the log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from toolrun import ModelUnavailableError
from toolrun.engines.remote._template import read_chat_template


def test_a_missing_template_names_no_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "secret-dir" / "template.jinja"
    with caplog.at_level(logging.ERROR), pytest.raises(ModelUnavailableError) as raised:
        read_chat_template(str(missing))
    assert "secret-dir" not in str(raised.value) and "is not a file" in str(raised.value)
    assert "secret-dir" in caplog.text


def test_an_oversized_template_names_no_path(tmp_path: Path) -> None:
    big = tmp_path / "secret-dir" / "big.jinja"
    big.parent.mkdir()
    big.write_text("x" * 1_000_001)
    with pytest.raises(ModelUnavailableError) as raised:
        read_chat_template(str(big))
    assert "secret-dir" not in str(raised.value)
