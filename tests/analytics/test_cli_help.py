"""Issue 10 §4: the Chinese half of every help text survives an 80-column terminal. Rich used
to crop a space-less Chinese sentence that did not fit its column with "…"."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from huitouke.cli.main import app

runner = CliRunner()
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef][^A-Za-z]*")


def _flat(text: str) -> str:
    """The help as one string: box drawing, spaces and line breaks removed."""
    return re.sub(r"[\s│╭╮╰╯─]+", "", text)


def _commands() -> list[tuple[str, Any]]:
    """Every command and sub-command, by the words that call it."""
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, group: Any) -> None:
        for name, cmd in sorted(group.commands.items()):
            path = f"{prefix} {name}".strip()
            out.append((path, cmd))
            # one level of sub-commands: the same renderer, and the suite stays quick
            if hasattr(cmd, "commands") and not prefix:
                walk(path, cmd)

    walk("", typer.main.get_command(app))
    return out


@pytest.mark.parametrize("name", [n for n, _ in _commands()])
def test_every_chinese_help_text_is_complete_at_80_columns(name: str) -> None:
    command = dict(_commands())[name]
    res = runner.invoke(
        app, [*name.split(), "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    )
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    shown = _flat(res.output)
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for zh in CJK.findall(text):
            assert _flat(zh) in shown, (name, zh)
