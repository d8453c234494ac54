"""Churn-reason structure analysis (BRIEF 结构分析: the share of each part in a whole × 100%),
for the reasons lost customers give in a call-back survey."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from huitouke.errors import InputError

__all__ = ["NO_ANSWER", "churn_reasons", "read_survey"]

#: The reason recorded for a surveyed customer who gave none.
NO_ANSWER = "(no answer)"

_CUSTOMER_ALIASES = (
    "customer_id",
    "customer",
    "客户id",
    "客户编号",
    "客户",
    "会员名",
    "买家会员名",
)
_REASON_ALIASES = ("reason", "churn_reason", "原因", "流失原因")


def _pick(columns: list[str], aliases: tuple[str, ...]) -> str | None:
    norm = {c.strip().lower(): c for c in columns}
    for a in aliases:
        if a in norm:
            return norm[a]
    return None


def churn_reasons(survey: pd.DataFrame) -> pd.DataFrame:
    """Per reason: the surveyed customers who gave it, their share of all surveyed customers
    and that share × 100 (``share_pct``), largest first.

    ``survey`` has columns ``customer_id`` and ``reason``, one row per (customer, reason); a
    customer giving several reasons counts once under each, so shares may then add up to
    more than 1. Repeated identical rows count once. A blank reason is recorded as
    :data:`NO_ANSWER`. Rows without a customer id are refused with their row numbers.
    """
    cust_col = _pick(list(map(str, survey.columns)), _CUSTOMER_ALIASES)
    reason_col = _pick(list(map(str, survey.columns)), _REASON_ALIASES)
    missing = [n for n, c in (("customer_id", cust_col), ("reason", reason_col)) if c is None]
    if missing:
        raise InputError(
            f"the survey lacks column(s) {', '.join(missing)} (has {', '.join(map(str, survey.columns))})",
            code="input.missing_column",
            message_zh=f"调查表缺少列:{', '.join(missing)}",
            details={"missing": missing, "columns": list(map(str, survey.columns))},
        )
    cust = survey[cust_col].map(lambda v: "" if pd.isna(v) else str(v).strip())
    bad = [int(i) for i in cust.index[cust == ""]]
    if bad:
        raise InputError(
            f"{len(bad)} survey row(s) have no customer id (rows {', '.join(map(str, bad[:10]))})",
            code="input.missing_customer_id",
            message_zh=f"调查表中有 {len(bad)} 行缺少客户编号(行 {', '.join(map(str, bad[:10]))})",
            details={"column": cust_col, "rows": bad[:10]},
        )
    reason = survey[reason_col].map(
        lambda v: NO_ANSWER if pd.isna(v) or not str(v).strip() else str(v).strip()
    )
    pairs = pd.DataFrame({"customer_id": cust, "reason": reason}).drop_duplicates()
    total = pairs["customer_id"].nunique()
    counts = pairs.groupby("reason")["customer_id"].nunique()
    ranked = sorted(((str(r), int(n)) for r, n in counts.items()), key=lambda x: (-x[1], x[0]))
    rows = [
        {
            "reason": r,
            "customers": n,
            "share": n / total if total else None,
            "share_pct": 100.0 * n / total if total else None,
        }
        for r, n in ranked
    ]
    return pd.DataFrame(rows, columns=["reason", "customers", "share", "share_pct"])


def read_survey(path: str | Path) -> pd.DataFrame:
    """Read a survey file (CSV in UTF-8 with or without BOM or GB18030, or Excel) with
    clear errors; row labels are the file's line numbers (header = line 1)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"survey file not found: {p}",
            code="input.file_not_found",
            message_zh=f"找不到调查文件:{p}",
            details={"file": str(p)},
        )
    try:
        if p.suffix.lower() in (".xlsx", ".xlsm"):
            df = pd.read_excel(p, dtype=str)
        else:
            raw = p.read_bytes()
            for enc in ("utf-8-sig", "gb18030"):
                try:
                    text = raw.decode(enc)
                    break
                except UnicodeDecodeError:
                    continue
            else:
                raise InputError(
                    f"{p}: not UTF-8 or GB18030 text",
                    code="input.bad_encoding",
                    message_zh=f"{p}:不是 UTF-8 或 GB18030 编码的文本",
                    details={"file": str(p)},
                )
            import io

            df = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, sep=None, engine="python"
            )
    except InputError:
        raise
    except Exception as exc:
        raise InputError(
            f"{p}: cannot read the survey ({exc})",
            code="input.bad_file",
            message_zh=f"{p}:无法读取调查文件({exc})",
            details={"file": str(p)},
        ) from exc
    if df.empty:
        raise InputError(
            f"{p}: the survey has no rows",
            code="input.empty_file",
            message_zh=f"{p}:调查文件没有数据行",
            details={"file": str(p)},
        )
    df.index = pd.RangeIndex(2, len(df) + 2)
    return df
