"""Contact rules (pure): each rule alone, then properties over random schedules and clocks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huitouke.errors import InputError
from huitouke.i18n import t
from huitouke.messaging.rules import (
    REASON_CODES,
    Cap,
    Contact,
    ContactPolicy,
    CustomerContext,
    PlannedMessage,
    evaluate,
    parse_caps,
    quiet_hours_end,
)

SH = ZoneInfo("Asia/Shanghai")
POLICY = ContactPolicy(
    caps=parse_caps("marketing:*:3/7d,marketing:sms:1/3d,marketing:sms:4/30d"),
    default_zone="Asia/Shanghai",
)
ALICE = CustomerContext("alice", consent={"sms": True, "email": True})


def at(y: int, mo: int, d: int, h: int = 12, mi: int = 0, zone: ZoneInfo = SH) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone).astimezone(UTC)


def sms(kind: str = "marketing", **kw: object) -> PlannedMessage:
    return PlannedMessage(channel="sms", kind=kind, **kw)  # type: ignore[arg-type]


def test_allowed_at_noon_with_consent() -> None:
    d = evaluate(ALICE, sms(), [], at(2026, 5, 6), POLICY)
    assert d.allowed and d.reason_code == "ok" and d.deliver_after is None


def test_every_reason_code_has_both_languages() -> None:
    for code in REASON_CODES:
        assert t(f"reason.{code}", "zh") and t(f"reason.{code}", "en")


def test_quiet_hours_delay_to_eight_in_the_customers_zone() -> None:
    # 22:30 in Shanghai: delayed to 08:00 the next morning, Shanghai time.
    d = evaluate(ALICE, sms(), [], at(2026, 5, 6, 22, 30), POLICY)
    assert not d.allowed and d.reason_code == "quiet_hours"
    assert d.deliver_after == at(2026, 5, 7, 8, 0)
    # 06:00 in Shanghai: delayed to 08:00 the same morning.
    assert evaluate(ALICE, sms(), [], at(2026, 5, 6, 6, 0), POLICY).deliver_after == at(
        2026, 5, 6, 8, 0
    )
    # The same instant is 15:30 in London for a customer there: allowed.
    london = CustomerContext("bob", consent={"sms": True}, timezone="Europe/London")
    assert evaluate(london, sms(), [], at(2026, 5, 6, 22, 30), POLICY).allowed


def test_quiet_hours_drop_only_when_the_message_would_expire() -> None:
    late = at(2026, 5, 6, 22, 30)
    d = evaluate(ALICE, sms(expires_at=at(2026, 5, 7, 7, 0)), [], late, POLICY)
    assert not d.allowed and d.reason_code == "expired" and d.deliver_after is None
    assert evaluate(ALICE, sms(expires_at=at(2026, 5, 7, 9, 0)), [], late, POLICY).delayed


def test_quiet_hours_off_when_start_equals_end() -> None:
    policy = ContactPolicy(
        quiet_start=time(0, 0), quiet_end=time(0, 0), default_zone="Asia/Shanghai"
    )
    assert evaluate(ALICE, sms(), [], at(2026, 5, 6, 23, 0), policy).allowed


def test_consent_and_unsubscribe() -> None:
    now = at(2026, 5, 6)
    no_email = CustomerContext("c", consent={"sms": True})
    assert (
        evaluate(no_email, PlannedMessage(channel="email"), [], now, POLICY).reason_code
        == "consent.missing"
    )
    # An unsubscribe wins over a consent flag, for service notices too.
    gone = CustomerContext("c", consent={"sms": True}, unsubscribed=frozenset({"sms"}))
    assert evaluate(gone, sms(), [], now, POLICY).reason_code == "unsubscribed"
    assert evaluate(gone, sms("transactional"), [], now, POLICY).reason_code == "unsubscribed"
    everywhere = CustomerContext(
        "c", consent={"sms": True, "email": True}, unsubscribed=frozenset({"*"})
    )
    assert (
        evaluate(everywhere, PlannedMessage(channel="email"), [], now, POLICY).reason_code
        == "unsubscribed"
    )


def test_caps_per_channel_and_global() -> None:
    now = at(2026, 5, 10)
    one_sms_yesterday = [Contact("sms", "marketing", now - timedelta(days=1))]
    d = evaluate(ALICE, sms(), one_sms_yesterday, now, POLICY)
    assert d.reason_code == "cap.channel" and d.deliver_after is None
    # 3 days later the 1-per-3-days window has slid past it.
    assert evaluate(
        ALICE, sms(), [Contact("sms", "marketing", now - timedelta(days=3))], now, POLICY
    ).allowed
    # Three marketing emails this week: the global cap stops an SMS too.
    emails = [Contact("email", "marketing", now - timedelta(days=i)) for i in (1, 2, 3)]
    assert evaluate(ALICE, sms(), emails, now, POLICY).reason_code == "cap.global"
    # Four marketing SMS in 30 days (spaced 4+ days) hit the monthly cap.
    month = [Contact("sms", "marketing", now - timedelta(days=d)) for d in (8, 12, 16, 20)]
    assert evaluate(ALICE, sms(), month, now, POLICY).reason_code == "cap.channel"


def test_transactional_is_not_capped_by_marketing_caps_and_comes_first() -> None:
    now = at(2026, 5, 10)
    busy = [Contact("sms", "marketing", now - timedelta(hours=1))] * 5
    assert evaluate(ALICE, sms("transactional"), busy, now, POLICY).allowed
    pending = [Contact("sms", "transactional", now - timedelta(minutes=5), pending=True)]
    d = evaluate(ALICE, sms(), pending, now, POLICY)
    assert d.reason_code == "transactional_first" and d.deliver_after and d.deliver_after > now
    # Service notices are not counted by marketing caps either.
    notices = [Contact("sms", "transactional", now - timedelta(hours=h)) for h in range(1, 10)]
    assert evaluate(ALICE, sms(), notices, now, POLICY).allowed


def test_suppression_after_an_order() -> None:
    planned = at(2026, 5, 1)
    ordered = CustomerContext("c", consent={"sms": True}, last_order_at=at(2026, 5, 3))
    msg = sms(planned_at=planned, suppress_if_ordered=True)
    assert evaluate(ordered, msg, [], at(2026, 5, 5), POLICY).reason_code == "suppressed.ordered"
    # Only when the step asks for it, and never for service notices.
    assert evaluate(ordered, sms(planned_at=planned), [], at(2026, 5, 5), POLICY).allowed
    assert evaluate(
        ordered,
        sms("transactional", planned_at=planned, suppress_if_ordered=True),
        [],
        at(2026, 5, 5),
        POLICY,
    ).allowed
    before = CustomerContext("c", consent={"sms": True}, last_order_at=at(2026, 4, 20))
    assert evaluate(before, msg, [], at(2026, 5, 5), POLICY).allowed


def test_staff_messages_skip_customer_rules() -> None:
    nobody = CustomerContext("c")
    staff = PlannedMessage(channel="wecom", audience="staff")
    assert evaluate(nobody, staff, [], at(2026, 5, 6, 23), POLICY).allowed


def test_parse_caps_errors_name_the_bad_cap() -> None:
    with pytest.raises(InputError) as err:
        parse_caps("marketing:sms:1/3d, bogus")
    assert err.value.code == "input.bad_cap" and "bogus" in err.value.message
    assert parse_caps("") == ()
    assert str(parse_caps("marketing:sms:4/30d")[0]) == "marketing:sms:4/30d"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        evaluate(ALICE, sms(), [], datetime(2026, 5, 6, 12), POLICY)


# -- properties --------------------------------------------------------------------------------
ZONES = [
    "Asia/Shanghai",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    None,
]
CHANNELS = ["sms", "email", "webhook"]


@st.composite
def schedules(
    draw: st.DrawFn,
) -> tuple[ContactPolicy, list[CustomerContext], list[tuple[datetime, int, str, str]]]:
    qs = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    qe = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30])))
    caps = (
        Cap("marketing", "*", draw(st.integers(1, 4)), timedelta(days=draw(st.integers(1, 10)))),
        Cap(
            "marketing", "sms", draw(st.integers(1, 3)), timedelta(hours=draw(st.integers(1, 120)))
        ),
    )
    policy = ContactPolicy(caps=caps, quiet_start=qs, quiet_end=qe, default_zone="Asia/Shanghai")
    custs = []
    for i in range(draw(st.integers(1, 4))):
        consent = {ch: draw(st.booleans()) for ch in CHANNELS}
        unsub = frozenset(draw(st.sets(st.sampled_from([*CHANNELS, "*"]), max_size=2)))
        custs.append(
            CustomerContext(
                f"c{i}", consent=consent, unsubscribed=unsub, timezone=draw(st.sampled_from(ZONES))
            )
        )
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 365 * 24 * 60))
    )
    attempts = []
    t0 = start
    for _ in range(draw(st.integers(1, 60))):
        t0 += timedelta(minutes=draw(st.integers(0, 36 * 60)))
        attempts.append(
            (
                t0,
                draw(st.integers(0, len(custs) - 1)),
                draw(st.sampled_from(CHANNELS)),
                draw(st.sampled_from(["marketing", "transactional"])),
            )
        )
    return policy, custs, attempts


def _quiet(local: time, policy: ContactPolicy) -> bool:
    s, e = policy.quiet_start, policy.quiet_end
    if s == e:
        return False
    return s <= local < e if s < e else (local >= s or local < e)


@settings(max_examples=300, deadline=None)
@given(schedules())
def test_property_no_send_to_unsubscribed_or_nonconsenting_in_quiet_hours_or_over_caps(
    data: tuple[ContactPolicy, list[CustomerContext], list[tuple[datetime, int, str, str]]],
) -> None:
    """Simulate a sender that follows the decisions (including delays) over a random clock."""
    policy, custs, attempts = data
    sent: dict[str, list[Contact]] = {c.customer_id: [] for c in custs}
    queue = [(when, i, ch, kind) for when, i, ch, kind in attempts]
    processed = 0
    while queue and processed < 500:
        queue.sort(key=lambda a: a[0])
        when, i, ch, kind = queue.pop(0)
        processed += 1
        cust = custs[i]
        d = evaluate(
            cust, PlannedMessage(channel=ch, kind=kind), sent[cust.customer_id], when, policy
        )  # type: ignore[arg-type]
        if d.allowed:
            sent[cust.customer_id].append(Contact(ch, kind, when))
        elif d.deliver_after is not None:
            assert d.deliver_after > when
            queue.append((d.deliver_after, i, ch, kind))
    for cust in custs:
        zone = ZoneInfo(cust.timezone or policy.default_zone)
        for c in sent[cust.customer_id]:
            assert cust.consent.get(c.channel), "sent without consent"
            assert "*" not in cust.unsubscribed and c.channel not in cust.unsubscribed, (
                "sent after unsubscribe"
            )
            assert not _quiet(c.at.astimezone(zone).time(), policy), "sent in quiet hours"
        for cap in policy.caps:
            counted = sorted(c.at for c in sent[cust.customer_id] if cap.counts(c))
            for j, end in enumerate(counted):
                in_window = [x for x in counted[: j + 1] if x > end - cap.window]
                assert len(in_window) <= cap.count, f"cap {cap} exceeded"


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from([z for z in ZONES if z]),
    st.integers(0, 23),
    st.integers(0, 23),
)
def test_property_quiet_hours_end_is_outside_quiet_hours(
    now: datetime, zone: str, s: int, e: int
) -> None:
    z = ZoneInfo(zone)
    end = quiet_hours_end(now, z, time(s), time(e))
    if end is None:
        assert not _quiet(
            now.astimezone(z).time(),
            ContactPolicy(quiet_start=time(s), quiet_end=time(e), default_zone="Asia/Shanghai"),
        )
    else:
        assert end > now
        assert not _quiet(
            end.astimezone(z).time(),
            ContactPolicy(quiet_start=time(s), quiet_end=time(e), default_zone="Asia/Shanghai"),
        )
        assert end - now <= timedelta(hours=25)
