"""`huitouke import` end to end, including kill -9 in the middle of a batch."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from huitouke.cli.main import main
from huitouke.data import CDNOW_SAMPLE
from huitouke.store.db import Store


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huitouke", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_import_dry_run_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    main(["import", str(CDNOW_SAMPLE), "--preset", "cdnow", "--database-url", url, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["orders_inserted"] == 6919 and out["preset"] == "cdnow"
    main(["import", str(CDNOW_SAMPLE), "--database-url", url, "--json"])
    assert json.loads(capsys.readouterr().out)["orders_unchanged"] == 6919
    f = tmp_path / "o.csv"
    f.write_text("单据,客户,日子,钱\nA1,m9,2024-03-05,10\nA2,,2024-03-05,10\n", encoding="utf-8")
    rej = tmp_path / "rej.csv"
    main(
        ["import", str(f), "--preset", "generic", "--mapping", "单据=order_id", "-m", "客户=customer_id",
         "-m", "日子=ordered_at", "-m", "钱=amount", "--dry-run", "--json", "--rejects", str(rej)]
    )  # fmt: skip
    dry = json.loads(capsys.readouterr().out)
    assert dry["orders"] == 1 and dry["rows_rejected"] == 1
    assert "import.missing_customer_id" in rej.read_text(encoding="utf-8-sig")
    assert Store(url).load_orders().num_rows == 6919  # the dry run stored nothing


def test_cli_maps_errors_to_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_LANG", "en")
    get_settings.cache_clear()
    bad = tmp_path / "x.csv"
    bad.write_text("order_id,amount\n1,2\n", encoding="utf-8")
    with pytest.raises(SystemExit) as ei:
        main(
            [
                "import",
                str(bad),
                "--preset",
                "generic",
                "--database-url",
                f"sqlite:///{tmp_path / 'a.db'}",
            ]
        )
    get_settings.cache_clear()
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "import.missing_columns" in err and "customer_id" in err


def _big_csv(path: Path, n: int) -> None:
    rnd = random.Random(7)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("order_id,customer_id,ordered_at,amount,status\n")
        for i in range(n):
            fh.write(
                f"k{i:08d},c{rnd.randrange(n // 5):07d},2024-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00:00,{rnd.randrange(1, 99999) / 100},paid\n"
            )


def _snapshot(db: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(db)
    try:
        return (
            con.execute("SELECT count(*) FROM orders").fetchone()[0],
            con.execute("SELECT count(*) FROM customers").fetchone()[0],
            con.execute("SELECT count(*) FROM import_batches").fetchone()[0],
        )
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_mid_batch_leaves_the_store_as_before(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    url = f"sqlite:///{db}"
    env = {"HUITOUKE_DATABASE_URL": url}
    assert run_cli(["import", str(CDNOW_SAMPLE)], env).returncode == 0
    before = _snapshot(db)
    orders_before = Store(url).load_orders()
    big = tmp_path / "big.csv"
    _big_csv(big, 600_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "huitouke", "import", str(big)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # wait until the batch row exists inside the (uncommitted) transaction: the WAL grows
    wal = Path(str(db) + "-wal")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if wal.exists() and wal.stat().st_size > 4_000_000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _snapshot(db) == before
    assert Store(url).load_orders().equals(orders_before)
    again = run_cli(["import", str(big), "--json"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["orders_inserted"] == 600_000
    assert _snapshot(db)[0] == before[0] + 600_000
