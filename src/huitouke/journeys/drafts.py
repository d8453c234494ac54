"""A new journey's starting point: the audience of one segment of the analytics, and a
draft definition (YAML, the format ``huitouke journeys validate`` and the journey store
read) built around it.

A segment is named ``<kind>:<name>`` — ``rfm:champions``, ``layer:high_winback``,
``lifecycle:decline`` — the vocabularies of :mod:`huitouke.analytics.segments`; each kind
maps to one audience filter (``rfm_segments``, ``layers``, ``lifecycles``), so a journey
started from a segment reaches exactly the customers the segment lists (on the day it runs).
"""

from __future__ import annotations

import yaml

from huitouke.errors import InputError
from huitouke.journeys.model import LAYERS, LIFECYCLES, RFM_SEGMENTS, Audience

__all__ = ["SEGMENT_KINDS", "draft_journey_yaml", "segment_audience"]

#: segment kind → (the audience filter it sets, the names it knows)
SEGMENT_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rfm": ("rfm_segments", RFM_SEGMENTS),
    "layer": ("layers", LAYERS),
    "lifecycle": ("lifecycles", LIFECYCLES),
}


def segment_audience(spec: str) -> Audience:
    """The audience of the segment ``kind:name``; an unknown kind or name is an input error
    naming what is known."""
    kind, sep, name = spec.strip().partition(":")
    if not sep or kind not in SEGMENT_KINDS:
        kinds = ", ".join(SEGMENT_KINDS)
        raise InputError(
            f"segment {spec!r}: write kind:name with kind one of {kinds}",
            code="journey.bad_segment",
            message_zh=f"分群 {spec!r}:应写成 类型:名称,类型为 {kinds} 之一",
            details={"field": "segment", "known_kinds": list(SEGMENT_KINDS)},
        )
    field, known = SEGMENT_KINDS[kind]
    if name not in known:
        raise InputError(
            f"segment {spec!r}: unknown {kind} segment {name!r}; known: {', '.join(known)}",
            code="journey.bad_segment",
            message_zh=f"分群 {spec!r}:未知的 {kind} 分群 {name!r};可选:{', '.join(known)}",
            details={"field": "segment", "known": list(known)},
        )
    return Audience.model_validate({field: [name]})


def draft_journey_yaml(segment: str | None = None) -> str:
    """A complete, valid journey to edit: a weekly reminder with a 10% holdout, to the
    segment's customers when ``segment`` is given. The caller validates what is saved."""
    audience = (
        segment_audience(segment).model_dump(exclude_none=True) if segment else {"orders_min": 1}
    )
    ident = (
        segment.replace(":", "-").replace("_", "-")[:50] + "-reminder" if segment else "my-reminder"
    )
    data = {
        "id": ident,
        "name": {
            "zh": f"提醒:{segment}" if segment else "复购提醒",
            "en": f"Reminder: {segment}" if segment else "Repurchase reminder",
        },
        "trigger": {"type": "schedule", "every": "week", "at": "10:00"},
        "audience": audience,
        "steps": [{"type": "send", "id": "remind", "channel": "sms", "template": "remind"}],
        "templates": {
            "remind": {
                "zh": {"body": "{{ customer.name }}您好,好久不见,欢迎回来看看新品。"},
                "en": {"body": "Hi {{ customer.name }}, we have new things you may like."},
            }
        },
        "holdout": 0.1,
        "priority": 100,
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
