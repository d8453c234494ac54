"""The console's loyalty program editor (会员方案编辑): the program document and a form for
every part of the program, each checked by the program's one validation before it is saved.

Routes (HTML, not in the OpenAPI schema):

- ``GET /loyalty/program`` (read; read-only below admin): the active version, the forms and
  the document;
- ``POST /loyalty/program/preview`` and ``POST /loyalty/program`` (admin): the program
  document (YAML or JSON), validated by the one validation of ``PUT /v1/program`` with each
  error at its field path, the difference from the active version, saved through the same
  use case (:func:`huitouke.service.programs.save_program_document`, which writes the
  audit row ``loyalty.program.save``);
- ``POST /loyalty/program/form`` (admin): earn rules and tier levels (and top-up bonuses,
  when a form sends them) put into the active document, then checked, shown or saved the
  same way;
- ``POST /loyalty/program/form/{part}`` (admin), ``part`` one of :data:`PARTS`: coupon
  templates with the stacking rules and the coupons issued after an order, stamp cards,
  stored value with its top-up bonuses and their release schedules (充200送200, 20 a month
  for 10 months), paid membership plans, referral. ``action=preview`` (the default; htmx
  swaps the part's section) checks and shows the changes, ``action=save`` saves a new
  version if the active version is still the one the form was opened at (else 409 and the
  changes against the newer one). Each input is named by its field path in the document
  (``coupon_templates.1.value``), so each validation error is shown next to its input.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from huitouke.errors import HuitoukeError, InputError
from huitouke.service.apikeys import scope_allows
from huitouke.service.console.kit import (
    N_,
    client_of,
    gettext_for,
    is_htmx,
    lang_of,
    page_context,
    render,
    request_ctx,
)
from huitouke.service.sessions import Session
from huitouke.store.uow import run_read

__all__ = ["PARTS", "merge_forms", "merge_part", "router"]

router = APIRouter(include_in_schema=False)

#: the most rows of one list a form may send (a bound on what a request can make us build)
MAX_ROWS = 500


# -- the program document --------------------------------------------------------------------


def _dump(document: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100))


def _active(request: Request) -> tuple[int | None, dict[str, Any]]:
    from huitouke.service.programs import loyalty_service, program_version

    ctx = request_ctx(request)

    def read(conn: Connection) -> tuple[int | None, dict[str, Any]]:
        return program_version(conn), loyalty_service(conn, ctx).program.to_document()

    return run_read(ctx.store, read)


def _field_errors(exc: HuitoukeError) -> list[dict[str, str]]:
    """Each validation error at its field path (``tiers.levels.1.threshold``)."""
    details = exc.details or {}
    errors = details.get("errors")
    if isinstance(errors, list) and errors:
        out = []
        for item in errors:
            path, _, message = str(item).partition(": ")
            out.append({"path": path, "message": message or path})
        return out
    return [{"path": str(details.get("field") or "(program)"), "message": exc.message}]


def _parse_document(text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 1) if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(
            f"line {line}: {problem}" if line else str(problem),
            code="loyalty.program_invalid",
            message_zh=f"第 {line} 行:{problem}" if line else str(problem),
            details={"field": f"line {line}" if line else "(program)"},
        ) from exc
    if not isinstance(data, dict):
        raise InputError(
            "the program must be a mapping at the top level",
            code="loyalty.program_invalid",
            message_zh="会员方案的顶层必须是键值映射",
            details={"field": "(program)"},
        )
    return data


def _diff(old: str, new: str, old_name: str, new_name: str) -> list[dict[str, str]]:
    lines = []
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_name, new_name, lineterm="", n=3
    ):
        kind = "ctx"
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        lines.append({"kind": kind, "text": line})
    return lines


def _forms_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The structured forms' values of a document (``earn``, ``tiers``, ``topups``), each
    only when it has the shape a form can show (a document being edited may not)."""

    def table(rows: Any) -> list[dict[str, Any]] | None:
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
        return None

    out: dict[str, Any] = {}
    earn = doc.get("earn", {})
    if isinstance(earn, dict):
        out["earn"] = earn
    tiers = doc.get("tiers")
    if tiers is None or (isinstance(tiers, dict) and table(tiers.get("levels", [])) is not None):
        out["tiers"] = tiers
    sv = doc.get("stored_value", {})
    if isinstance(sv, dict) and (rules := table(sv.get("topup_rules", []))) is not None:
        out["topups"] = rules
    return out


def _program_page(
    request: Request, session: Session, *, status: int = 200, **values: Any
) -> Response:
    lang = lang_of(request, session)
    gettext = gettext_for(lang)
    version, active = _active(request)
    text = _dump(active)
    shown = values.pop("shown_doc", None)
    doc = shown if isinstance(shown, dict) else active
    errors = field_errors(values.get("errors") or [], lang)
    if lang == "zh" and values.get("errors"):  # the table of every error, in Chinese too
        values["errors"] = [{**e, "message": zh_message(e["message"])} for e in values["errors"]]
    base: dict[str, Any] = {
        "version": version,
        "base_version": "" if version is None else str(version),
        "document": text,
        "errors": [],
        "diff": None,
        "notice": None,
        "error": None,
        "can_edit": scope_allows(session.user.role, "admin"),
        "release_every": RELEASE_EVERY,
        "posted": None,
        "parts": [_part_view(p, doc, errors, gettext) for p in PARTS.values()],
        **_forms_of(active),
    }
    base.update(values)
    return render(request, "loyalty_program.html", lang, session=session, status=status, **base)


@router.get("/loyalty/program")
def program_page(request: Request) -> Response:
    """The program editor (admins; read-only for the others). 会员方案编辑。"""
    page = page_context(request)
    if isinstance(page, Response):
        return page
    return _program_page(request, page.session)


def _check_document(request: Request, text: str) -> tuple[dict[str, Any], Any]:
    from huitouke.service.programs import validate_program_document

    ctx = request_ctx(request)
    document = _parse_document(text)
    return document, validate_program_document(ctx, document)


def _preview(
    request: Request,
    session: Session,
    text: str,
    base_version: str,
    *,
    save: bool,
    part: str | None = None,
) -> Response:
    from huitouke.service.programs import save_program_document

    ctx = request_ctx(request)
    lang = lang_of(request, session)
    gettext = gettext_for(lang)
    version, active = _active(request)
    shown: dict[str, Any] = {"document": text, "base_version": base_version, "posted": part}
    with contextlib.suppress(HuitoukeError):  # the forms show what was sent until it is saved
        sent = _parse_document(text)
        shown.update(_forms_of(sent), shown_doc=sent)
    try:
        document, program = _check_document(request, text)
    except HuitoukeError as exc:
        # htmx swaps only a 2xx answer: a check through htmx is answered 200, its errors shown
        invalid = 200 if is_htmx(request) and not save else 422
        return _program_page(
            request, session, status=invalid, errors=_field_errors(exc), **shown,
            error=gettext("The program was not saved: fix the fields below."),
        )  # fmt: skip
    old_name = gettext("active (version %(version)s)", version=version or 0)
    diff = _diff(_dump(active), _dump(program.to_document()), old_name, gettext("edited"))
    if not save:
        return _program_page(request, session, diff=diff, **shown, notice=(
            gettext("Valid. The changes against the active version are below.") if diff
            else gettext("Valid, and the same as the active version.")
        ))  # fmt: skip
    current = "" if version is None else str(version)
    conflict = gettext(
        "Version %(version)s was saved while you edited: nothing was saved. The changes "
        "below are against it; save again to replace it.",
        version=current or "0",
    )
    if base_version != current:
        shown["base_version"] = current
        return _program_page(request, session, status=409, diff=diff, error=conflict, **shown)
    if not diff:
        return _program_page(
            request, session, **shown, notice=gettext("Nothing changed: nothing was saved.")
        )
    try:
        saved = save_program_document(
            ctx, document, if_version=int(current or 0), actor=session.user.name,
            client=client_of(request),
        )  # fmt: skip
    except HuitoukeError as exc:
        if exc.code == "loyalty.program_version_conflict":
            return _preview(request, session, text, base_version, save=True, part=part)
        return _program_page(
            request, session, status=exc.http_status, errors=_field_errors(exc), **shown,
            error=exc.localized(lang),
        )  # fmt: skip
    return _program_page(
        request, session, diff=diff, posted=part,
        notice=gettext("Saved as version %(version)s.", version=saved["version"]),
    )  # fmt: skip


@router.post("/loyalty/program/preview")
def program_preview(
    request: Request,
    document: str = Form(""),
    base_version: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Validate an edited program and show its changes; nothing is saved. 校验并预览。"""
    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    return _preview(request, page.session, document, base_version, save=False)


@router.post("/loyalty/program")
def program_save(
    request: Request,
    document: str = Form(""),
    base_version: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    """Validate and save the program as a new version (as PUT /v1/program). 保存会员方案。"""
    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    return _preview(request, page.session, document, base_version, save=True)


# -- structured forms: earn rules, tiers (and stored-value top-ups) --------------------------------

#: what a top-up bonus may be released by
RELEASE_EVERY = ("day", "week", "month")


def _rows(*columns: list[str]) -> list[list[str]]:
    """The form's table rows (one list per column, as the browser sends them), without
    those whose first field is empty (the blank row for a new one, or a row emptied to
    remove it)."""
    width = max((len(c) for c in columns), default=0)
    rows = [[(c[i] if i < len(c) else "").strip() for c in columns] for i in range(width)]
    return [r for r in rows if r[0]]


def merge_forms(
    active: dict[str, Any],
    *,
    earn: dict[str, str],
    tiers: list[list[str]],
    topups: list[list[str]] | None = None,
) -> dict[str, Any]:
    """The active document with the structured forms' values put in: earn rules, tier
    levels (row i changes level i, keeping what the form does not show; no rows and no tiers
    before: none), top-up rules when sent (``None``: unchanged; the stored-value form edits
    them all). The values stay text: the program's one validation reads them and names
    each bad one at its field path (``tiers.levels.1.threshold``)."""
    doc = copy.deepcopy(active)
    doc.setdefault("earn", {}).update({k: v for k, v in earn.items()})
    if tiers or doc.get("tiers"):
        old = (doc.get("tiers") or {}).get("levels", [])
        levels = []
        for i, (tid, name, threshold, discount, multiplier) in enumerate(tiers):
            level = copy.deepcopy(old[i]) if i < len(old) else {}
            level.update({"id": tid, "name": name, "threshold": threshold})
            benefits = level.setdefault("benefits", {})
            benefits.update(
                {"discount_percent": discount or "0", "points_multiplier": multiplier or "1"}
            )
            levels.append(level)
        doc["tiers"] = {**(doc.get("tiers") or {}), "levels": levels}
    if topups is None:
        return doc
    old_rules = doc.setdefault("stored_value", {}).get("topup_rules", [])
    rules = []
    for i, (minimum, bonus, parts, every) in enumerate(topups):
        rule = copy.deepcopy(old_rules[i]) if i < len(old_rules) else {}
        rule.update(
            {"min_amount": minimum, "bonus": bonus or "0", "release_installments": parts or "1",
             "release_every": every or "month"}
        )  # fmt: skip
        rules.append(rule)
    doc["stored_value"]["topup_rules"] = rules
    return doc


@router.post("/loyalty/program/form")
def program_form(
    request: Request,
    action: str = Form("preview"),
    base_version: str = Form(""),
    points_per_unit: str = Form(""),
    unit: str = Form(""),
    per_order: str = Form(""),
    min_order_amount: str = Form(""),
    tier_id: list[str] = Form([]),
    tier_name: list[str] = Form([]),
    tier_threshold: list[str] = Form([]),
    tier_discount: list[str] = Form([]),
    tier_multiplier: list[str] = Form([]),
    topup_min: list[str] = Form([]),
    topup_bonus: list[str] = Form([]),
    topup_parts: list[str] = Form([]),
    topup_every: list[str] = Form([]),
    csrf_token: str = Form(""),
) -> Response:
    """Earn rules and tiers (and top-up bonuses, when sent) as forms: put into the active
    document, then checked, shown and saved exactly as the document editor does.
    以表单编辑积分规则与会员等级。"""
    page = page_context(request, role="admin", csrf=csrf_token, check_csrf=True)
    if isinstance(page, Response):
        return page
    _, active = _active(request)
    merged = merge_forms(
        active,
        earn={"points_per_unit": points_per_unit, "unit": unit, "per_order": per_order,
              "min_order_amount": min_order_amount},
        tiers=_rows(tier_id, tier_name, tier_threshold, tier_discount, tier_multiplier),
        topups=_rows(topup_min, topup_bonus, topup_parts, topup_every) if topup_min else None,
    )  # fmt: skip
    return _preview(request, page.session, _dump(merged), base_version, save=action == "save")


# -- forms for every part of the program --------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """One input of a part's form.

    ``key``: its dotted path inside the item (``benefits.discount_percent``); ``kind``:
    ``text``, ``decimal``, ``int``, ``bool`` (a checkbox), ``choice`` (``options``),
    ``template`` (a coupon template of the program), ``tier`` (a tier of the program),
    ``words`` (a list of words, comma separated) or ``stamps`` (a stamp card's rewards,
    ``1:americano, 5:latte``). An empty ``optional`` input is stored as null; another
    empty input is left out, so the model's default applies (or it is reported missing).
    ``new``: the value a new item starts with."""

    key: str
    label: str
    kind: str = "text"
    options: tuple[tuple[str, str], ...] = ()
    optional: bool = False
    new: str = ""


@dataclass(frozen=True)
class Block:
    """The inputs of one object of the document (``path``), or of each item of a list
    (``many``: one row per item and a blank one for a new item; an item whose first input
    is emptied is removed)."""

    path: str
    inputs: tuple[Input, ...]
    many: bool = False
    title: str = ""


@dataclass(frozen=True)
class Part:
    name: str
    title: str
    hint: str
    blocks: tuple[Block, ...]
    #: a top-level key that a checkbox switches off (null), e.g. ``referral``
    switch: str | None = None


def _dec(key: str, label: str, *, optional: bool = False, new: str = "") -> Input:
    return Input(key, label, "decimal", optional=optional, new=new)


def _int(key: str, label: str, *, optional: bool = False, new: str = "") -> Input:
    return Input(key, label, "int", optional=optional, new=new)


def _bool(key: str, label: str, *, new: str = "") -> Input:
    return Input(key, label, "bool", new=new)


COUPON_KINDS = (
    ("fixed", N_("Fixed amount off")),
    ("percent", N_("Percent off")),
    ("threshold", N_("Amount off above a threshold (满减)")),
    ("free_item", N_("Free item")),
    ("next_order", N_("Next-order coupon")),
    ("spend_back", N_("Spend-back coupon (返券)")),
)
STAMP_PER = (
    ("visit", N_("per visit (one a day)")),
    ("order", N_("per order")),
    ("amount", N_("per amount step")),
)
SPEND_ORDER = (
    ("paid_first", N_("paid balance first")),
    ("bonus_first", N_("bonus balance first")),
)
RELEASE_CHOICES = (("day", N_("day")), ("week", N_("week")), ("month", N_("month")))

PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part(
            "coupons",
            N_("Coupon templates"),
            N_("A value in the currency or a percent, a threshold (满200减30: value 30 from "
               "200), validity in days, limits and stacking. Empty a row's id to remove it."),
            (
                Block("coupon_templates", (
                    Input("id", N_("Id")), Input("name", N_("Coupon name")),
                    Input("kind", N_("Kind"), "choice", COUPON_KINDS, new="fixed"),
                    _dec("value", N_("Coupon value"), optional=True),
                    _dec("percent", N_("Percent off"), optional=True),
                    _dec("max_discount", N_("At most off"), optional=True),
                    _dec("min_order_amount", N_("Orders from"), new="0"),
                    Input("sku", N_("Free SKU"), optional=True),
                    _dec("share", N_("Share of the order (0–1)"), optional=True),
                    _dec("min_value", N_("Least value"), new="0"),
                    _dec("max_value", N_("Most value"), optional=True),
                    _int("valid_days", N_("Valid for days"), new="30"),
                    _int("delay_days", N_("Usable after days"), new="0"),
                    _int("max_per_customer", N_("At most per customer"), optional=True),
                    _bool("transferable", N_("May be gifted"), new="true"),
                    _int("max_transfers", N_("Times it may be gifted"), new="1"),
                    _bool("stackable", N_("Stacks with other coupons")),
                ), many=True),
                Block("stacking", (
                    _int("max_coupons_per_order", N_("Coupons per order at most")),
                    _bool("member_discount_with_coupons", N_("Member discount with coupons")),
                ), title=N_("Stacking rules")),
                Block("order_coupons", (
                    Input("template", N_("Coupon template"), "template"),
                    _dec("min_order_amount", N_("Orders from"), new="0"),
                    _bool("first_order_only", N_("First order only")),
                ), many=True, title=N_("Coupons issued after an order")),
            ),
        ),
        Part(
            "stamps",
            N_("Stamp cards"),
            N_("Rewards are stamps:template pairs, e.g. 1:americano, 5:latte. Stamps expire "
               "after the days given (empty: never). Empty a row's id to remove it."),
            (
                Block("stamp_cards", (
                    Input("id", N_("Id")), Input("name", N_("Card name")),
                    Input("per", N_("A stamp"), "choice", STAMP_PER, new="visit"),
                    _dec("amount_step", N_("Amount step"), optional=True),
                    _dec("min_order_amount", N_("Orders from"), new="0"),
                    _int("max_per_order", N_("Stamps per order at most"), optional=True),
                    _int("size", N_("Stamps to fill the card")),
                    Input("rewards", N_("Rewards (stamps:template)"), "stamps"),
                    _int("expire_days", N_("Stamps expire after days"), optional=True),
                ), many=True),
            ),
        ),
        Part(
            "stored_value",
            N_("Stored value"),
            N_("充200送200 with the bonus released as 20 a month: from 200, bonus 200, 10 "
               "parts, every month. Empty a row's first field to remove it."),
            (
                Block("stored_value", (
                    Input("spend_order", N_("Pay from"), "choice", SPEND_ORDER),
                    _dec("min_topup", N_("Smallest top-up")),
                    _bool("refund_forfeits_bonus", N_("A refunded top-up loses its bonus")),
                    _bool("return_on_order_refund", N_("Order refunds return stored value")),
                )),
                Block("stored_value.topup_rules", (
                    _dec("min_amount", N_("Top-up from")),
                    _dec("bonus", N_("Bonus"), new="0"),
                    _dec("bonus_percent", N_("Or bonus % of the top-up"), optional=True),
                    _int("release_installments", N_("Released in parts"), new="1"),
                    Input("release_every", N_("One part every"), "choice", RELEASE_CHOICES,
                          new="month"),
                    _bool("release_first_immediately", N_("First part at once"), new="true"),
                ), many=True, title=N_("Top-up bonuses")),
            ),
        ),
        Part(
            "membership",
            N_("Paid membership"),
            N_("A fee buys the benefits for a term in months or in days (one of the two). "
               "Perks are comma separated. Empty a row's id to remove it."),
            (
                Block("membership_plans", (
                    Input("id", N_("Id")), Input("name", N_("Plan name")),
                    _dec("fee", N_("Fee")),
                    _int("term_months", N_("Term in months"), optional=True),
                    _int("term_days", N_("Term in days"), optional=True),
                    _dec("benefits.discount_percent", N_("Discount %"), new="0"),
                    _dec("benefits.points_multiplier", N_("Points ×"), new="1"),
                    Input("benefits.perks", N_("Perks"), "words"),
                    _bool("benefits.remember_preferences", N_("Remember preferences")),
                ), many=True),
            ),
        ),
        Part(
            "referral",
            N_("Referral"),
            N_("Both sides are rewarded after the first paid order is past the refund "
               "window. A milestone rewards the referrer's n-th referral (e.g. 2 → a tier "
               "upgrade); empty its count to remove it."),
            (
                Block("referral", (
                    _dec("referrer_reward.points", N_("Referrer: points"), new="0"),
                    Input("referrer_reward.template", N_("Referrer: coupon"), "template",
                          optional=True),
                    _dec("referred_reward.points", N_("Friend: points"), new="0"),
                    Input("referred_reward.template", N_("Friend: coupon"), "template",
                          optional=True),
                    _int("refund_window_days", N_("Refund window in days")),
                    _dec("min_first_order_amount", N_("First order from")),
                    _int("max_referrals_per_referrer", N_("Rewarded referrals at most"),
                         optional=True),
                )),
                Block("referral.milestones", (
                    _int("count", N_("At referral number")),
                    Input("upgrade_tier", N_("Upgrade to tier"), "tier", optional=True),
                    _dec("reward.points", N_("Points"), new="0"),
                    Input("reward.template", N_("Coupon"), "template", optional=True),
                ), many=True, title=N_("Milestones")),
            ),
            switch="referral",
        ),
    )
}  # fmt: skip


def _get(obj: Any, key: str) -> Any:
    for k in key.split(".") if key else ():
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _object(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The object at ``path`` in ``doc``, made (an empty one) where there is none."""
    obj = doc
    for k in path.split(".") if path else ():
        nxt = obj.get(k)
        if not isinstance(nxt, dict):
            nxt = obj[k] = {}
        obj = nxt
    return obj


_WORDS = re.compile(r"[,，、;；\n]+")
_STAMPS = re.compile(r"[,，、;；\s]+")


def _stamps(text: str) -> list[dict[str, str]]:
    """``1:americano, 5:latte`` as stamp rewards (an entry without ``:`` is kept, for the
    validation to name it)."""
    out = []
    for entry in _STAMPS.split(text.strip()):
        if entry:
            stamps, _, template = entry.replace("：", ":").partition(":")
            out.append({"stamps": stamps, "template": template})
    return out


def _apply(item: dict[str, Any], inp: Input, form: Mapping[str, Any], name: str) -> None:
    """Put the value the form sent for ``inp`` into ``item`` (as text: the program's
    validation reads it and names it when it is wrong)."""
    parent, _, leaf = inp.key.rpartition(".")
    target = _object(item, parent)
    raw = form.get(name)
    if inp.kind == "bool":
        target[leaf] = raw in ("true", "on", "1")
        return
    text = str(raw or "").strip()
    if inp.kind == "words":
        target[leaf] = [w.strip() for w in _WORDS.split(text) if w.strip()]
    elif inp.kind == "stamps":
        target[leaf] = _stamps(text)
    elif text:
        target[leaf] = text
    elif inp.optional:
        target[leaf] = None
    else:
        target.pop(leaf, None)


def _indices(form: Mapping[str, Any], path: str) -> list[int]:
    pattern = re.compile(re.escape(path) + r"\.(\d{1,4})\.")
    found = {int(m.group(1)) for k in form if (m := pattern.match(k))}
    return sorted(found)[:MAX_ROWS]


def merge_part(active: dict[str, Any], part: Part, form: Mapping[str, Any]) -> dict[str, Any]:
    """The active document with one part's form put in. Each input is named by its field
    path (``coupon_templates.1.value``, ``stored_value.topup_rules.0.bonus``); a list's rows
    are numbered as the form showed the items, so row i changes item i and keeps what the
    form does not show. The values stay text for the program's one validation to read."""
    doc = copy.deepcopy(active)
    if part.switch is not None and form.get(f"{part.switch}.enabled") not in ("true", "on", "1"):
        doc[part.switch] = None
        return doc
    for block in part.blocks:
        if not block.many:
            obj = _object(doc, block.path)
            for inp in block.inputs:
                _apply(obj, inp, form, f"{block.path}.{inp.key}")
            continue
        parent_path, _, leaf = block.path.rpartition(".")
        parent = _object(doc, parent_path)
        present = parent.get(leaf)
        old: list[Any] = present if isinstance(present, list) else []
        items = []
        for i in _indices(form, block.path):
            first = f"{block.path}.{i}.{block.inputs[0].key}"
            if not str(form.get(first) or "").strip():
                continue
            item = copy.deepcopy(old[i]) if i < len(old) and isinstance(old[i], dict) else {}
            for inp in block.inputs:
                _apply(item, inp, form, f"{block.path}.{i}.{inp.key}")
            items.append(item)
        parent[leaf] = items
    return doc


# the validation's messages in Chinese, by pattern (the domain's messages are English;
# the pattern's groups are kept: field names, numbers, ids)
ZH_MESSAGES = tuple(
    (re.compile(pattern), zh)
    for pattern, zh in (
        (r"Input should be a valid decimal", "应为数字"),
        (r"Input should be a valid integer.*", "应为整数"),
        (r"Input should be a valid number.*", "应为数字"),
        (r"Input should be a valid boolean.*", "应为是或否"),
        (r"Input should be a valid string", "应为文字"),
        (r"Input should be a valid (list|dictionary).*", "格式不对"),
        (r"Input should be greater than or equal to (\S+)", r"应不小于 \1"),
        (r"Input should be greater than (\S+)", r"应大于 \1"),
        (r"Input should be less than or equal to (\S+)", r"应不大于 \1"),
        (r"Input should be less than (\S+)", r"应小于 \1"),
        (r"Input should be (.+)", r"应为 \1"),
        (r"Field required", "必填"),
        (r"Extra inputs are not permitted", "不认识的字段"),
        (r"(\w+) must be > 0", r"\1 须大于 0"),
        (r"(\w+ )?must be >= (\S+)", r"\1须不小于 \2"),
        (r"a (\w+) coupon needs value > 0", r"\1 类优惠券须有大于 0 的面额"),
        (r"a percent coupon needs percent.*", "折扣券须填折扣百分比(0 < percent ≤ 100)"),
        (r"a threshold coupon needs min_order_amount > 0", "满减券须有大于 0 的门槛金额"),
        (r"a free_item coupon names the free sku", "赠品券须填赠送的 SKU"),
        (r"a next_order coupon has exactly one of them", "下单券的面额与折扣须且只填一项"),
        (r"a spend_back coupon needs share.*", "返券须填返还比例(0 < share ≤ 1)"),
        (r"a per-amount card needs amount_step > 0", "按金额集章须有大于 0 的金额步长"),
        (r"stamp counts must strictly increase", "奖励的章数须严格递增"),
        (r"a step \((\d+)\) is beyond the card size (\d+)", r"第 \1 章的奖励超出了卡的章数 \2"),
        (r"give exactly one", "两项须且只填一项"),
        (r"unknown coupon template (.+)", r"没有这个优惠券模板:\1"),
        (r"unknown tier (.+)", r"没有这个会员等级:\1"),
        (r"(template )?ids must be unique", "编号不能重复"),
        (r"(.+) has more decimal places than points\.decimals \((\d+)\)",
         r"\1 的小数位数多于 points.decimals(\2)"),
    )
)  # fmt: skip

_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:[./][a-z0-9_]+)*): (.+)$", re.S)


def field_errors(errors: list[dict[str, str]], lang: str) -> list[dict[str, str]]:
    """The validation's errors at the field they are about: a check of a whole object
    names its field first (``coupon_templates.0`` ``value: a fixed coupon needs value >
    0`` is about ``coupon_templates.0.value``; ``term_days/term_months`` about both), and
    in Chinese where the message is known."""
    out = []
    for e in errors:
        path, message = e["path"], e["message"]
        paths = [path]
        found = _PREFIX.match(message)
        if found:
            message = found.group(2)
            names = found.group(1).split("/")
            paths = [n if path == "(program)" else f"{path}.{n}" for n in names]
        if lang == "zh":
            message = zh_message(message)
        out += [{"path": p, "message": message} for p in paths]
    return out


def zh_message(message: str) -> str:
    """A validation message in Chinese where its pattern is known (a leading ``field: ``
    kept), else as it is."""
    found = _PREFIX.match(message)
    head, rest = (found.group(1) + ": ", found.group(2)) if found else ("", message)
    for pattern, zh in ZH_MESSAGES:
        if m := pattern.fullmatch(rest):
            return head + m.expand(zh)
    return message


def _shown(value: Any, inp: Input) -> str:
    if value is None:
        return ""
    if inp.kind == "words" and isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if inp.kind == "stamps" and isinstance(value, list):
        return ", ".join(
            f"{_get(r, 'stamps') or ''}:{_get(r, 'template') or ''}" if isinstance(r, dict)
            else str(r)
            for r in value
        )  # fmt: skip
    return str(value)


def _field(
    inp: Input,
    name: str,
    value: Any,
    errors: list[dict[str, str]],
    doc: dict[str, Any],
    gettext: Any,
) -> dict[str, Any]:
    mine = [e["message"] for e in errors if e["path"] == name or e["path"].startswith(name + ".")]
    options: list[tuple[str, str]] | None = None
    text = _shown(value, inp)
    if inp.kind == "choice":
        options = [(v, gettext(label)) for v, label in inp.options]
    elif inp.kind in ("template", "tier"):
        rows = (
            _get(doc, "coupon_templates") if inp.kind == "template" else _get(doc, "tiers.levels")
        )
        ids = [str(r["id"]) for r in rows or [] if isinstance(r, dict) and r.get("id")]
        if text and text not in ids:
            ids.append(text)
        options = [("", "—")] + [(i, i) for i in ids]
    if options is not None and text and text not in [v for v, _ in options]:
        options.append((text, text))
    return {
        "name": name,
        "id": "f-" + re.sub(r"[^a-zA-Z0-9_-]", "-", name),
        "label": gettext(inp.label),
        "kind": inp.kind,
        "value": text,
        "checked": value is True or (isinstance(value, str) and value in ("true", "on")),
        "options": options,
        "inputmode": {"decimal": "decimal", "int": "numeric"}.get(inp.kind),
        "errors": mine,
    }


def _part_view(
    part: Part, doc: dict[str, Any], errors: list[dict[str, str]], gettext: Any
) -> dict[str, Any]:
    """What the template shows of one part: its blocks with their rows of fields (the
    document's values, or what was sent), each with the errors about it. A part whose
    document is not in a shape the form can show (edited by hand) is marked so."""
    view: dict[str, Any] = {"name": part.name, "title": gettext(part.title),
                            "hint": gettext(part.hint), "blocks": [], "shape": True,
                            "switch": part.switch, "enabled": True, "errors": []}  # fmt: skip
    if part.switch is not None:
        view["enabled"] = isinstance(doc.get(part.switch), dict)
    claimed: set[int] = set()
    for block in part.blocks:
        rows = []
        if block.many:
            items = _get(doc, block.path)
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                view["shape"] = False
                break
            for i, item in enumerate([*items, None]):
                base = f"{block.path}.{i}"
                fields = [
                    _field(inp, f"{base}.{inp.key}",
                           _get(item, inp.key) if item is not None else (inp.new or None),
                           errors, doc, gettext)
                    for inp in block.inputs
                ]  # fmt: skip
                row_errors = [e["message"] for e in errors if e["path"] == base]
                rows.append({"fields": fields, "new": item is None, "errors": row_errors})
        else:
            obj = _get(doc, block.path)
            if obj is not None and not isinstance(obj, dict):
                view["shape"] = False
                break
            fields = [
                _field(inp, f"{block.path}.{inp.key}",
                       _get(obj, inp.key) if obj is not None else (inp.new or None),
                       errors, doc, gettext)
                for inp in block.inputs
            ]  # fmt: skip
            rows.append({"fields": fields, "new": False, "errors": []})
        for n, e in enumerate(errors):
            if e["path"] == block.path or e["path"].startswith(block.path + "."):
                claimed.add(n)
        view["blocks"].append(
            {"path": block.path, "title": gettext(block.title) if block.title else "",
             "many": block.many, "rows": rows,
             "errors": [e["message"] for e in errors if e["path"] == block.path]}
        )  # fmt: skip
    return view


@router.post("/loyalty/program/form/{part}")
async def program_part_form(request: Request, part: str) -> Response:
    """One part of the program as a form (coupons, stamp cards, stored value, paid
    membership, referral): put into the active document, then checked and shown
    (``action=preview``) or saved (``action=save``) as the document editor does.
    以表单编辑会员方案的一部分。"""
    form = await request.form(max_files=0, max_fields=20_000)
    token = form.get("csrf_token")
    page = page_context(
        request, role="admin", csrf=token if isinstance(token, str) else "", check_csrf=True
    )
    if isinstance(page, Response):
        return page
    spec = PARTS.get(part)
    if spec is None:
        return page.error(404, page.gettext("No such part of the program."))
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    _, active = _active(request)
    merged = merge_part(active, spec, values)
    return _preview(
        request, page.session, _dump(merged), values.get("base_version", ""),
        save=values.get("action") == "save", part=part,
    )  # fmt: skip
