"""What the private-domain playbook does with WeCom: codes, callback events, surveys.

Functions take an open connection (the caller owns the transaction) and, where WeCom must be
asked, a :class:`~huitouke.messaging.channels.wecom_api.WeComClient`. The callback's order of work is the
application layer's (:mod:`huitouke.app.wecom`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from huitouke.errors import ConflictError, InputError, NotFoundError
from huitouke.identity.keys import hash_key, normalise_phone
from huitouke.identity.service import person_map
from huitouke.identity.tables import identity_keys
from huitouke.messaging.channels.wecom_api import WeComClient
from huitouke.store.profiles import define_attribute, get_attribute, set_attribute
from huitouke.store.tables import customers
from huitouke.wecom.tables import (
    wecom_contact_ways,
    wecom_contacts,
    wecom_events,
    wecom_group_joins,
)

__all__ = [
    "CHANNEL",
    "GROUP_TAG_PREFIX",
    "TAG_GROUP",
    "ChatEvent",
    "Event",
    "Linked",
    "add_code",
    "apply_wecom_tags",
    "link_contact",
    "list_codes",
    "mark_removed",
    "parse_chat_event",
    "parse_event",
    "push_tags",
    "record_event",
    "record_group_joins",
    "save_survey",
    "set_event_status",
    "survey_of",
    "sync_tags",
]

#: the message channel of 1:1 messages to external contacts
CHANNEL = "wecom_contact"
#: the WeCom tag group our tags are created in
TAG_GROUP = "huitouke"
#: the tag a customer gets for each customer group they joined: ``wecom_group:<chat_id>``
GROUP_TAG_PREFIX = "wecom_group:"
#: who the profile history names for survey answers
SURVEY_ACTOR = "wecom:survey"
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Event:
    """A ``change_external_contact`` callback event, as WeCom sends it."""

    event: str
    change_type: str
    user_id: str
    external_userid: str
    create_time: int
    state: str | None = None
    welcome_code: str | None = None


@dataclass(frozen=True)
class Linked:
    """The customer an external contact is linked to, and what to do next in WeCom."""

    customer_id: str
    linked_by: str
    code: str | None
    tags: tuple[str, ...] = ()
    welcome: dict[str, str] = field(default_factory=dict)


def _bad(field_name: str, en: str, zh: str) -> InputError:
    return InputError(en, code="wecom.bad_input", message_zh=zh, details={"field": field_name})


def parse_event(xml_text: str) -> Event:
    """The event in a decrypted callback body; refuses what is not one, naming the field."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise _bad(
            "body", f"the callback body is not XML: {exc}", f"回调内容不是 XML:{exc}"
        ) from None

    def text(tag: str) -> str:
        return (root.findtext(tag) or "").strip()

    create = text("CreateTime")
    if not create.isdigit():
        raise _bad(
            "CreateTime", "CreateTime is missing or not a number", "CreateTime 缺失或不是数字"
        )
    return Event(
        event=text("Event"),
        change_type=text("ChangeType"),
        user_id=text("UserID"),
        external_userid=text("ExternalUserID"),
        create_time=int(create),
        state=text("State") or None,
        welcome_code=text("WelcomeCode") or None,
    )


@dataclass(frozen=True)
class ChatEvent:
    """A ``change_external_chat`` callback event (客户群变更), as WeCom sends it: for members
    joining, ``ChangeType`` ``update``, ``UpdateDetail`` ``add_member``, ``JoinScene`` (0 invited
    by a member, 3 by scanning the group's QR code — a group live code), ``MemChangeCnt`` and,
    where WeCom gives it, ``MemChangeList`` (the members who joined)."""

    chat_id: str
    change_type: str
    update_detail: str
    create_time: int
    join_scene: int | None = None
    member_count: int | None = None
    members: tuple[str, ...] = ()

    def as_event(self) -> Event:
        """The row of ``wecom_events`` it is recorded once under (the group in ``user_id``)."""
        change = (
            f"{self.change_type}:{self.update_detail}" if self.update_detail else self.change_type
        )
        return Event(event="change_external_chat", change_type=change[:64], user_id=self.chat_id,
                     external_userid="", create_time=self.create_time)  # fmt: skip


def parse_chat_event(xml_text: str) -> ChatEvent:
    """A ``change_external_chat`` event from a decrypted callback body, naming a bad field."""
    root = ET.fromstring(xml_text)

    def text(tag: str) -> str:
        return (root.findtext(tag) or "").strip()

    def number(tag: str) -> int | None:
        value = text(tag)
        if not value:
            return None
        if not value.isdigit():
            raise _bad(tag, f"{tag} is not a number", f"{tag} 不是数字")
        return int(value)

    create = number("CreateTime")
    if create is None:
        raise _bad("CreateTime", "CreateTime is missing", "CreateTime 缺失")
    chat_id = text("ChatId")
    if not chat_id:
        raise _bad("ChatId", "ChatId is missing", "ChatId 缺失")
    items = root.find("MemChangeList")
    members = tuple(
        (i.text or "").strip()
        for i in (items if items is not None else [])
        if (i.text or "").strip()
    )
    return ChatEvent(
        chat_id=chat_id, change_type=text("ChangeType"), update_detail=text("UpdateDetail"),
        create_time=create, join_scene=number("JoinScene"), member_count=number("MemChangeCnt"),
        members=members,
    )  # fmt: skip


def record_group_joins(
    conn: Connection,
    event: ChatEvent,
    chat: Mapping[str, Any],
    event_id: int,
    *,
    secret: bytes,
    now: datetime,
) -> list[dict[str, Any]]:
    """The external contacts the event says joined ``chat`` (``groupchat/get``'s answer):
    those named in ``MemChangeList``, or — WeCom's older events carry no list — the
    external members who joined at or after a minute before the event. Each join is
    recorded once (group, contact, join time); the contact is linked to its customer (the
    WeCom contact added before, else the union id), who gets the tag
    ``wecom_group:<chat_id>`` and the attribute ``wecom_groups`` (the groups joined) — and
    ``wecom_group_code`` when the join came by one of our group live codes (its ``state``,
    or a QR-code join of a group a code offers). Returns the joins recorded now."""
    named = set(event.members)
    joined = [
        m for m in chat.get("member_list") or []
        if int(m.get("type") or 0) == 2 and m.get("userid")
        and (str(m["userid"]) in named if named
             else int(m.get("join_time") or 0) >= event.create_time - 60)
    ]  # fmt: skip
    if not joined:
        return []
    codes = conn.execute(select(wecom_contact_ways.c.code, wecom_contact_ways.c.group_chats)).all()
    by_chat = sorted(c.code for c in codes if event.chat_id in (c.group_chats or []))
    ours = {c.code for c in codes}
    out: list[dict[str, Any]] = []
    for m in joined:
        ext = str(m["userid"])
        state = str(m.get("state") or "") or None
        scene = m.get("join_scene")
        code = state if state in ours else (by_chat[0] if by_chat and scene == 3 else None)
        linked = conn.execute(
            select(wecom_contacts.c.customer_id).where(wecom_contacts.c.external_userid == ext)
        ).scalar_one_or_none()
        unionid = str(m.get("unionid") or "").strip()
        if linked is None and unionid:
            linked = _match(conn, "union_id", [hash_key(secret, "union_id", unionid)])
        row = {
            "chat_id": event.chat_id, "external_userid": ext,
            "join_time": int(m.get("join_time") or event.create_time),
            "join_scene": None if scene is None else int(scene), "state": state, "code": code,
            "customer_id": linked, "event_id": event_id, "recorded_at": now,
        }  # fmt: skip
        try:
            with conn.begin_nested():
                conn.execute(insert(wecom_group_joins).values(**row))
        except IntegrityError:
            continue  # recorded before (a redelivery, or the older event without a list)
        out.append(row)
        if linked is not None:
            _tag_group_member(conn, linked, event.chat_id, code, now=now)
    return out


def _tag_group_member(
    conn: Connection, customer_id: str, chat_id: str, code: str | None, *, now: datetime
) -> None:
    row = conn.execute(
        select(customers.c.tags, customers.c.attributes).where(
            customers.c.customer_id == customer_id
        )
    ).first()
    if row is None:
        return
    attributes = dict(row.attributes or {})
    attributes["wecom_groups"] = sorted({*(attributes.get("wecom_groups") or []), chat_id})
    if code is not None:
        attributes["wecom_group_code"] = code
    tags = sorted({*(row.tags or []), f"{GROUP_TAG_PREFIX}{chat_id}"})
    conn.execute(
        update(customers)
        .where(customers.c.customer_id == customer_id)
        .values(tags=tags, attributes=attributes, updated_at=now)
    )


def _check_survey(survey: Any) -> list[dict[str, Any]]:
    if not isinstance(survey, list):
        raise _bad("survey", "the survey must be a list of questions", "问卷须为问题列表")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, q in enumerate(survey):
        where = f"survey[{i}]"
        if not isinstance(q, dict):
            raise _bad(where, f"{where} must be an object", f"{where} 须为对象")
        key = q.get("key")
        if not isinstance(key, str) or not _KEY.match(key) or key in seen:
            raise _bad(
                f"{where}.key",
                f"{where}.key must be a new lower-case name (a-z, 0-9, _)",
                f"{where}.key 须为不重复的小写名称(a-z、0-9、_)",
            )
        seen.add(key)
        label = q.get("label")
        if not isinstance(label, dict) or not all(
            isinstance(label.get(lang), str) and label.get(lang) for lang in ("zh", "en")
        ):
            raise _bad(
                f"{where}.label", f"{where}.label needs zh and en", f"{where}.label 须有 zh 和 en"
            )
        choices = q.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, str) and c.strip() and len(c) <= 40 for c in choices)
        ):
            raise _bad(
                f"{where}.choices",
                f"{where}.choices must be a non-empty list of short texts",
                f"{where}.choices 须为非空的短文本列表",
            )
        out.append({"key": key, "label": {"zh": label["zh"], "en": label["en"]},
                    "choices": [c.strip() for c in choices]})  # fmt: skip
    return out


def add_code(
    conn: Connection,
    client: WeComClient,
    *,
    code: str,
    users: Sequence[str],
    source: str,
    tags: Sequence[str],
    welcome_zh: str,
    welcome_en: str,
    survey: Any,
    now: datetime,
    group_chats: Sequence[str] = (),
) -> dict[str, Any]:
    """A channel live code: created in WeCom (its ``state`` is our code), then stored. With
    ``group_chats``, also a group live code (群活码) for those after-sales groups, which the
    welcome message offers."""
    if not _CODE.match(code):
        raise _bad(
            "code",
            "the code must be 1–30 letters, digits, - or _",
            "渠道码名称须为 1–30 个字母、数字、- 或 _",
        )
    if not users or not all(u.strip() for u in users):
        raise _bad(
            "users",
            "name at least one staff member (WeCom user id)",
            "至少指定一位员工(企业微信 userid)",
        )
    if not welcome_zh.strip() or not welcome_en.strip():
        raise _bad("welcome", "the welcome text is needed in zh and en", "欢迎语须有中文和英文")
    questions = _check_survey(survey)
    exists = conn.execute(
        select(wecom_contact_ways.c.code).where(wecom_contact_ways.c.code == code)
    ).first()
    if exists is not None:
        raise ConflictError(
            f"channel code {code} exists already", code="wecom.code_exists",
            message_zh=f"渠道码 {code} 已存在", details={"code": code},
        )  # fmt: skip
    made = client.add_contact_way(state=code, users=list(users), remark=source)
    chats = [c.strip() for c in group_chats if c.strip()]
    group = client.add_join_way(state=code, chat_ids=chats, remark=source) if chats else {}
    row = {
        "code": code,
        "config_id": str(made["config_id"]),
        "qr_code": str(made.get("qr_code", "")),
        "users": list(users),
        "source": source,
        "tags": sorted({t.strip() for t in tags if t.strip()}),
        "welcome_zh": welcome_zh,
        "welcome_en": welcome_en,
        "survey": questions,
        "group_chats": chats,
        "group_config_id": group.get("config_id"),
        "group_qr_code": group.get("qr_code"),
        "created_at": now,
    }
    conn.execute(insert(wecom_contact_ways).values(**row))
    return row


def list_codes(conn: Connection) -> list[dict[str, Any]]:
    """Every code with how many contacts it brought (and how many are still there)."""
    c = wecom_contacts.c
    counts = {
        r.code: (int(r.added), int(r.kept))
        for r in conn.execute(
            select(
                c.code,
                func.count().label("added"),
                func.count(c.removed_at).label("removed"),
                (func.count() - func.count(c.removed_at)).label("kept"),
            ).group_by(c.code)
        )
    }
    out = []
    for r in conn.execute(
        select(wecom_contact_ways).order_by(wecom_contact_ways.c.code)
    ).mappings():
        added, kept = counts.get(r["code"], (0, 0))
        out.append({**dict(r), "contacts_added": added, "contacts_kept": kept})
    return out


def record_event(conn: Connection, event: Event, *, now: datetime) -> tuple[int, bool, str]:
    """The event's row: ``(event_id, new, status)`` — ``new`` is false when the event was
    received before (its stored status tells whether it was applied)."""
    try:
        with conn.begin_nested():
            pk = conn.execute(
                insert(wecom_events).values(
                    received_at=now,
                    event=event.event,
                    change_type=event.change_type,
                    external_userid=event.external_userid,
                    user_id=event.user_id,
                    create_time=event.create_time,
                    state=event.state,
                    status="received",
                )
            ).inserted_primary_key
    except IntegrityError:
        e = wecom_events.c
        row = conn.execute(
            select(e.event_id, e.status).where(
                e.change_type == event.change_type,
                e.external_userid == event.external_userid,
                e.user_id == event.user_id,
                e.create_time == event.create_time,
            )
        ).one()
        return int(row.event_id), False, str(row.status)
    assert pk is not None
    return int(pk[0]), True, "received"


def set_event_status(conn: Connection, event_id: int, status: str, reason: str | None) -> None:
    conn.execute(
        update(wecom_events)
        .where(wecom_events.c.event_id == event_id)
        .values(status=status, reason=reason)
    )


def _match(conn: Connection, kind: str, hashes: Sequence[str]) -> str | None:
    if not hashes:
        return None
    k = identity_keys.c
    rows = conn.execute(
        select(k.customer_id)
        .where(k.kind == kind, k.key_hash.in_(list(hashes)))
        .order_by(k.customer_id)
    ).all()
    if not rows:
        return None
    links = person_map(conn)
    persons = sorted({links.get(r.customer_id, r.customer_id) for r in rows})
    return persons[0]


def link_contact(
    conn: Connection,
    contact: Mapping[str, Any],
    event: Event,
    *,
    secret: bytes,
    region: str,
    now: datetime,
) -> Linked:
    """Link the contact WeCom described (``externalcontact/get``) to a customer: by union id,
    else by a phone the staff member noted (``remark_mobiles``), else a new customer
    ``wecom:<external_userid>``. Records where they came from and applies the code's tags
    here; returns what to send and tag in WeCom."""
    ext = contact.get("external_contact") or {}
    follow: dict[str, Any] = next(
        (f for f in contact.get("follow_user") or [] if f.get("userid") == event.user_id), {}
    )
    unionid = str(ext.get("unionid") or "").strip()
    customer_id = None
    linked_by = "new"
    if unionid:
        customer_id = _match(conn, "union_id", [hash_key(secret, "union_id", unionid)])
        linked_by = "union_id" if customer_id else linked_by
    if customer_id is None:
        phones = [
            p for p in (normalise_phone(m, region) for m in follow.get("remark_mobiles") or []) if p
        ]
        customer_id = _match(conn, "phone", [hash_key(secret, "phone", p) for p in phones])
        linked_by = "phone" if customer_id else linked_by
    code_row = None
    code = event.state or follow.get("state") or None
    if code:
        code_row = (
            conn.execute(select(wecom_contact_ways).where(wecom_contact_ways.c.code == code))
            .mappings()
            .first()
        )
    tags = tuple(code_row["tags"]) if code_row else ()
    if customer_id is None:
        customer_id = f"wecom:{event.external_userid}"
        existing = conn.execute(
            select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
        ).first()
        if existing is None:
            conn.execute(
                insert(customers).values(
                    customer_id=customer_id,
                    name=str(ext.get("name") or "")[:200] or None,
                    tags=[],
                    attributes={},
                    consent={},
                    created_at=now,
                    updated_at=now,
                )
            )
    row = conn.execute(
        select(customers.c.tags, customers.c.attributes).where(
            customers.c.customer_id == customer_id
        )
    ).first()
    assert row is not None
    attributes = dict(row.attributes or {})
    attributes.update(
        {"wecom_external_userid": event.external_userid, "wecom_follow_user": event.user_id}
    )
    if unionid and not attributes.get("union_id"):
        attributes["union_id"] = unionid
    if code_row:
        attributes["wecom_code"] = code_row["code"]
        attributes["wecom_source"] = code_row["source"]
    new_tags = sorted({*(row.tags or []), *tags})
    conn.execute(
        update(customers)
        .where(customers.c.customer_id == customer_id)
        .values(attributes=attributes, tags=new_tags, updated_at=now)
    )
    values = {
        "follow_user": event.user_id, "customer_id": customer_id, "linked_by": linked_by,
        "code": code_row["code"] if code_row else None, "name": str(ext.get("name") or "")[:200],
        "added_at": now, "removed_at": None, "welcome": "pending" if event.welcome_code else "none",
        "welcome_error": None,
    }  # fmt: skip
    done = conn.execute(
        update(wecom_contacts)
        .where(wecom_contacts.c.external_userid == event.external_userid)
        .values(**values)
    ).rowcount
    if not done:
        conn.execute(insert(wecom_contacts).values(external_userid=event.external_userid, **values))
    welcome = (
        {"zh": str(code_row["welcome_zh"]), "en": str(code_row["welcome_en"]),
         "survey": "1" if code_row["survey"] else "", "group_qr": code_row["group_qr_code"] or ""}
        if code_row else {}
    )  # fmt: skip
    return Linked(customer_id, linked_by, code_row["code"] if code_row else None, tags, welcome)


def mark_removed(conn: Connection, event: Event, *, now: datetime) -> str | None:
    """The contact deleted the staff member (or was deleted): the link is kept, marked
    removed; the linked customer's id, if any."""
    row = conn.execute(
        select(wecom_contacts.c.customer_id).where(
            wecom_contacts.c.external_userid == event.external_userid
        )
    ).first()
    if row is None:
        return None
    conn.execute(
        update(wecom_contacts)
        .where(wecom_contacts.c.external_userid == event.external_userid)
        .values(removed_at=now)
    )
    return str(row.customer_id)


def sync_tags(
    conn: Connection, contact: Mapping[str, Any], event: Event, *, now: datetime
) -> str | None:
    """WeCom → us: the tags the staff member gave the contact in WeCom become the linked
    customer's tags; tags removed there since the last sync are removed here (tags we set
    ourselves are left alone)."""
    row = conn.execute(
        select(wecom_contacts.c.customer_id).where(
            wecom_contacts.c.external_userid == event.external_userid
        )
    ).first()
    if row is None:
        return None
    follow: dict[str, Any] = next(
        (f for f in contact.get("follow_user") or [] if f.get("userid") == event.user_id), {}
    )
    theirs = sorted({str(t["tag_name"]) for t in follow.get("tags") or [] if t.get("tag_name")})
    cust = conn.execute(
        select(customers.c.tags, customers.c.attributes).where(
            customers.c.customer_id == row.customer_id
        )
    ).first()
    assert cust is not None
    attributes = dict(cust.attributes or {})
    before = set(attributes.get("wecom_tags") or [])
    tags = (set(cust.tags or []) - (before - set(theirs))) | set(theirs)
    attributes["wecom_tags"] = theirs
    conn.execute(
        update(customers)
        .where(customers.c.customer_id == row.customer_id)
        .values(tags=sorted(tags), attributes=attributes, updated_at=now)
    )
    return str(row.customer_id)


def survey_of(
    conn: Connection, external_userid: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """The linked customer, the survey of the code the contact came by, and the answers
    already given (the customer's attributes)."""
    row = conn.execute(
        select(wecom_contacts.c.customer_id, wecom_contact_ways.c.survey)
        .select_from(
            wecom_contacts.outerjoin(
                wecom_contact_ways, wecom_contact_ways.c.code == wecom_contacts.c.code
            )
        )
        .where(wecom_contacts.c.external_userid == external_userid)
    ).first()
    if row is None:
        raise NotFoundError(
            "this survey link is not known", code="wecom.unknown_contact",
            message_zh="问卷链接无效", details={},
        )  # fmt: skip
    attrs = conn.execute(
        select(customers.c.attributes).where(customers.c.customer_id == row.customer_id)
    ).scalar_one()
    return str(row.customer_id), list(row.survey or []), dict(attrs or {})


def save_survey(
    conn: Connection, external_userid: str, answers: Mapping[str, str], *, now: datetime
) -> tuple[str, list[str]]:
    """The answers as profile attributes (``key = choice``) and tags (``key:choice``);
    a choice not offered is refused by name. Returns the customer and the tags to mirror in
    WeCom."""
    customer_id, questions, attrs = survey_of(conn, external_userid)
    chosen: dict[str, str] = {}
    for q in questions:
        value = (answers.get(q["key"]) or "").strip()
        if not value:
            continue
        if value not in q["choices"]:
            raise _bad(
                q["key"],
                f"{q['key']}: {value!r} is not one of the choices",
                f"{q['key']}:{value!r} 不是可选项",
            )
        chosen[q["key"]] = value
    tags_row = conn.execute(
        select(customers.c.tags).where(customers.c.customer_id == customer_id)
    ).scalar_one()
    keys = set(chosen)
    kept = [t for t in (tags_row or []) if t.split(":", 1)[0] not in keys]
    new = [f"{k}:{v}" for k, v in sorted(chosen.items())]
    attrs.update(chosen)
    attrs["wecom_survey_at"] = now.isoformat()
    conn.execute(
        update(customers)
        .where(customers.c.customer_id == customer_id)
        .values(attributes=attrs, tags=sorted({*kept, *new}), updated_at=now)
    )
    # the answers as typed profile attributes too (a ``choice`` attribute per question,
    # defined on first use), with their history: what journey audiences and segments use
    by_key = {q["key"]: q for q in questions}
    for key, value in chosen.items():
        attr = get_attribute(conn, key)
        if attr is None:
            attr = define_attribute(
                conn, key, "choice", choices=by_key[key]["choices"], actor=SURVEY_ACTOR, now=now
            )
        if attr.type == "choice" and value not in attr.choices:
            continue  # defined elsewhere with other choices: kept as the answer only
        set_attribute(conn, [customer_id], key, value, actor=SURVEY_ACTOR, now=now)
    return customer_id, new


def apply_wecom_tags(
    client: WeComClient, user_id: str, external_userid: str, names: Sequence[str]
) -> None:
    """Us → WeCom: tag the contact with ``names``, creating missing tags in our group."""
    wanted = sorted({n for n in names if n})
    if not wanted:
        return
    known = client.corp_tags()
    missing = [n for n in wanted if n not in known]
    if missing:
        known.update(client.add_corp_tags(TAG_GROUP, missing))
    client.mark_tag(user_id, external_userid, add=[known[n] for n in wanted if n in known])


def push_tags(conn: Connection, client: WeComClient, *, now: datetime) -> dict[str, int]:
    """Us → WeCom for every contact still added: the linked customer's tags (those not
    brought from WeCom) are set on the contact; tags pushed before and removed here since
    are taken off. What was pushed is remembered in ``wecom_pushed_tags``."""
    rows = conn.execute(
        select(
            wecom_contacts.c.external_userid,
            wecom_contacts.c.follow_user,
            customers.c.customer_id,
            customers.c.tags,
            customers.c.attributes,
        )
        .join(customers, customers.c.customer_id == wecom_contacts.c.customer_id)
        .where(wecom_contacts.c.removed_at.is_(None))
        .order_by(wecom_contacts.c.external_userid)
    ).all()
    known: dict[str, str] | None = None
    counts = {"contacts": 0, "added": 0, "removed": 0}
    for r in rows:
        attributes = dict(r.attributes or {})
        from_wecom = set(attributes.get("wecom_tags") or [])
        ours = sorted(set(r.tags or []) - from_wecom)
        before = set(attributes.get("wecom_pushed_tags") or [])
        add = [t for t in ours if t not in before]
        remove = sorted(before - set(ours))
        if not add and not remove:
            continue
        if known is None:
            known = client.corp_tags()
        missing = [t for t in add if t not in known]
        if missing:
            known.update(client.add_corp_tags(TAG_GROUP, missing))
        client.mark_tag(
            r.follow_user,
            r.external_userid,
            add=[known[t] for t in add if t in known],
            remove=[known[t] for t in remove if t in known],
        )
        attributes["wecom_pushed_tags"] = ours
        conn.execute(
            update(customers)
            .where(customers.c.customer_id == r.customer_id)
            .values(attributes=attributes, updated_at=now)
        )
        counts["contacts"] += 1
        counts["added"] += len(add)
        counts["removed"] += len(remove)
    return counts
