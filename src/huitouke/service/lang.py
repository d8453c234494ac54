"""Language negotiation: ``Accept-Language`` picks zh or en, else the merchant's default."""

from __future__ import annotations

__all__ = ["negotiate_lang"]


def negotiate_lang(header: str | None, default: str = "zh") -> str:
    """The best of ``zh``/``en`` in an ``Accept-Language`` header (q-values honoured)."""
    if not header:
        return default
    best: tuple[float, int, str] | None = None
    for pos, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("zh", "en"):
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q <= 0:
            continue
        cand = (q, -pos, primary)
        if best is None or cand > best:
            best = cand
    return best[2] if best else default
