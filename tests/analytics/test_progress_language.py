"""Issue 10 §4: the progress shown while reading and writing a large import speaks the
chosen language (HUITOUKE_LANG), not English in a Chinese session."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest


def _big_csv(path: Path, rows: int) -> None:
    """A generic export above the thresholds of the read note (5 MB) and the bar (50,000)."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write("order_id,customer_id,ordered_at,amount,status\n")
        for i in range(rows):
            fh.write(
                f"ORDER-{i:09d},CUSTOMER-{i % 9000:07d},2024-0{1 + i % 9}-1{i % 9} "
                f"10:{i % 60:02d}:00,{100 + i % 500}.50,paid\n"
            )


def _stderr_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run with stderr on a pseudo-terminal (Rich draws its bar only on a terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, **env}
    )
    os.close(slave)
    out = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=600)
    os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode("utf-8", errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize(
    ("lang", "read", "write"), [("zh", "读取", "写入"), ("en", "reading", "writing")]
)
def test_import_progress_speaks_the_chosen_language(
    tmp_path: Path, lang: str, read: str, write: str
) -> None:
    src = tmp_path / "big.csv"
    _big_csv(src, 110_000)
    env = {"HUITOUKE_LANG": lang, "HUITOUKE_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    shown = _stderr_on_a_terminal([sys.executable, "-m", "huitouke", "import", str(src)], env=env)
    assert f"{read} big.csv" in shown, shown[-500:]
    assert f"{write} big.csv" in shown, shown[-500:]
    other = ("reading", "writing") if lang == "zh" else ("读取", "写入")
    assert not any(w in shown for w in other)
    assert "→ store" not in shown
