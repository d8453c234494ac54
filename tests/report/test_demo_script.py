"""scripts/demo.sh installs on a fresh machine and when pyproject.toml changed — not on
every run. Run on a copy of the script with a stand-in Python that records what it is asked
to do (no network, no real install)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$DEMO_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
    cp "$FAKE_HUITOUKE" .venv/bin/huitouke && exit 0
fi
exec "$REAL_PYTHON" "$@"
"""
FAKE_HUITOUKE = """#!/usr/bin/env bash
echo "huitouke $*" >> "$DEMO_LOG"
"""


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    proj = tmp_path / "proj"
    (proj / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", proj / "scripts" / "demo.sh")
    (proj / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    fake_py = tmp_path / "python3"
    fake_py.write_text(FAKE_PYTHON)
    fake_hk = tmp_path / "huitouke"
    fake_hk.write_text(FAKE_HUITOUKE)
    for f in (fake_py, fake_hk):
        f.chmod(0o755)
    env = {
        **os.environ,
        "PYTHON": str(fake_py),
        "REAL_PYTHON": shutil.which("python3") or "python3",
        "FAKE_HUITOUKE": str(fake_hk),
        "DEMO_LOG": str(tmp_path / "log"),
    }
    return proj, env


def _run(proj: Path, env: dict[str, str]) -> list[str]:
    log = Path(env["DEMO_LOG"])
    log.write_text("")
    res = subprocess.run(
        ["bash", str(proj / "scripts" / "demo.sh")], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return log.read_text().splitlines()


def _installs(lines: list[str]) -> int:
    return sum("-m pip install" in line for line in lines)


def test_demo_installs_only_when_needed(project: tuple[Path, dict[str, str]]) -> None:
    proj, env = project
    first = _run(proj, env)  # a fresh machine: venv, install, report
    assert any("-m venv .venv" in line for line in first)
    assert _installs(first) == 1
    assert first[-1] == "huitouke report --sample --lang zh --out out/report.html"
    again = _run(proj, env)  # nothing changed
    assert _installs(again) == 0 and not any("-m venv" in line for line in again)
    assert again[-1].startswith("huitouke report --sample")
    (proj / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    assert _installs(_run(proj, env)) == 1  # dependencies may have changed
    assert _installs(_run(proj, env)) == 0
    (proj / ".venv" / "bin" / "huitouke").unlink()  # a broken venv installs again
    assert _installs(_run(proj, env)) == 1
