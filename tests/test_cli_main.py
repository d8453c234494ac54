"""The console entry point maps usage errors and huitouke errors to exit codes, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huitouke", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_usage_error_exits_2_without_traceback(tmp_path: Path) -> None:
    r = _run("metrics", str(tmp_path / "missing.csv"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "missing.csv" in r.stderr


def test_unknown_command_exits_2() -> None:
    r = _run("no-such-command")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_huitouke_error_has_code_and_exit_code(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    r = _run("metrics", str(empty), "--format", "json")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "[import." in r.stderr


def test_invalid_timezone_is_one_clear_line_in_each_language(tmp_path: Path) -> None:
    import os

    for lang, words in (("zh", "未知时区"), ("en", "unknown time zone")):
        for args in (["settings"], ["serve", "--port", "1"], ["apikey", "list"]):
            r = subprocess.run(
                [sys.executable, "-m", "huitouke", *args],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
                env={**os.environ, "HUITOUKE_TIMEZONE": "Mars/Olympus", "HUITOUKE_LANG": lang},
            )
            assert r.returncode == 2, (args, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1, (args, r.stderr)
            assert "[settings.invalid]" in lines[0] and words in lines[0]
            assert "HUITOUKE_TIMEZONE='Mars/Olympus'" in lines[0]
