"""Model choice: fit the candidates, reject the fits that cannot be used, keep the best.

A maximum-likelihood fit can succeed and still be useless. On ordinary shop data (few
repeat buyers, little spread in their buying rates) the MBG/NBD likelihood keeps rising as
``r`` and ``α`` grow together — the gamma mixing distribution collapses to a point — and the
optimiser stops at, say, r = 1.04e6, α = 6.56e7 with the best BIC of all, whose predictions
then overflow. :func:`select_model` therefore checks every fit before ranking it
(:func:`diagnose_fit`) and rejects it when

1. ``parameter_bound`` — a parameter ran beyond ``[PARAMETER_FLOOR, PARAMETER_CEILING]``
   (the data do not identify it; the model has degenerated to one of its limits);
2. ``singular_hessian`` — the observed information matrix is not positive definite, so
   the standard errors do not exist (a flat or ill-posed likelihood);
3. ``not_finite`` — the log-likelihood, P(alive), the expected orders in the horizon or
   P(no further order) is not a finite number for some customer;
4. ``implausible`` — the expected repeat orders of all customers in the horizon exceed
   :data:`IMPLAUSIBLE_FACTOR` times what the shop's own observed repeat rate (repeat
   orders per customer-time, everyone assumed alive) gives for that horizon.

The accepted fits are ranked by BIC (or AIC, or log-likelihood). When no candidate is
accepted, every candidate is fitted once more with a small ridge penalty on the
log-parameters (:data:`FALLBACK_PENALIZER`), which keeps degenerate parameters finite,
and checked again; the choice then says it is regularised. When still nothing is
accepted, :class:`~huitouke.errors.ModelFitError` ``model.no_usable_model`` lists every
candidate's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from huitouke.errors import InputError, ModelFitError
from huitouke.models._base import validate_rfm, validate_weights
from huitouke.models._btyd import ContinuousBTYD
from huitouke.models.bgnbd import BGNBD, MBGNBD
from huitouke.models.pnbd import ParetoNBD

__all__ = [
    "FALLBACK_PENALIZER",
    "IMPLAUSIBLE_FACTOR",
    "MODELS",
    "PARAMETER_CEILING",
    "PARAMETER_FLOOR",
    "FitProblem",
    "ModelSelection",
    "diagnose_fit",
    "fit_model",
    "select_model",
]

#: names accepted by :func:`fit_model` (and the CLI's ``--model``)
MODELS: dict[str, type[ContinuousBTYD]] = {"bgnbd": BGNBD, "pnbd": ParetoNBD, "mbgnbd": MBGNBD}
_LABELS = {"bgnbd": "BG/NBD", "pnbd": "Pareto/NBD", "mbgnbd": "MBG/NBD"}

#: a fitted parameter outside this range has run to a limit of the model
PARAMETER_CEILING = 1e6
PARAMETER_FLOOR = 1e-6
#: predicted repeat orders above this multiple of the observed-rate forecast are absurd
IMPLAUSIBLE_FACTOR = 3.0
#: the ridge penalty of the second round (see the module docstring)
FALLBACK_PENALIZER = 1e-3
#: the horizon of the plausibility check when none is given: 90 days in the data's unit
_DEFAULT_CHECK_HORIZON_DAYS = 90.0


@dataclass(frozen=True)
class FitProblem:
    """Why a fit cannot be used: a stable ``code`` and the reason in English and Chinese."""

    code: str
    reason: str
    reason_zh: str


def diagnose_fit(
    model: ContinuousBTYD,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    horizon: float | None = None,
) -> FitProblem | None:
    """The first reason ``model`` (fitted on these data) cannot be used, or None.

    ``horizon`` is the forecast length in the data's time unit for the plausibility check
    (default: 90 time units' worth of days when the unit is a day — 90). See the module
    docstring for the rules.
    """
    x, tx, tt = validate_rfm(frequency, recency, T)
    w = validate_weights(weights, x.size)
    h = _DEFAULT_CHECK_HORIZON_DAYS if horizon is None else float(horizon)
    params = model.params_
    far = {k: v for k, v in params.items() if not PARAMETER_FLOOR <= v <= PARAMETER_CEILING}
    if far:
        listing = ", ".join(f"{k} = {v:.3g}" for k, v in far.items())
        return FitProblem(
            "parameter_bound",
            f"parameter(s) {listing} ran to a limit (outside {PARAMETER_FLOOR:g}–"
            f"{PARAMETER_CEILING:g}): the data do not identify them",
            f"参数 {listing} 趋于极限(超出 {PARAMETER_FLOOR:g}–{PARAMETER_CEILING:g}),数据无法识别",
        )
    cov = getattr(model, "covariance_", None)
    if cov is None or not _positive_definite(np.asarray(cov, dtype=np.float64)):
        return FitProblem(
            "singular_hessian",
            "the information matrix is singular (no standard errors): the likelihood is flat "
            "in some direction",
            "信息矩阵奇异(无法计算标准误):似然在某些方向上是平的",
        )
    with np.errstate(all="ignore"):
        checks = {
            # set_params models carry no likelihood; fitted ones must have a finite one
            "log-likelihood": np.array([getattr(model, "log_likelihood_", 0.0)]),
            "P(alive)": model.probability_alive(x, tx, tt),
            "expected orders": model.conditional_expected_purchases(h, x, tx, tt),
            "P(no further order)": model.next_order_distribution(x, tx, tt)[
                "p_no_further_order"
            ].to_numpy(),
        }
    for name, values in checks.items():
        bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
        if np.any(bad):
            return FitProblem(
                "not_finite",
                f"{name} is not a finite number for {int(bad.sum()):,} customer(s)",
                f"{int(bad.sum()):,} 位客户的 {name} 不是有限数值",
            )
    expected = float(np.sum(w * checks["expected orders"]))
    exposure = float(np.sum(w * tt))
    observed = float(np.sum(w * x)) / exposure * h * float(w.sum()) if exposure > 0 else 0.0
    if expected > IMPLAUSIBLE_FACTOR * observed + 1.0:
        return FitProblem(
            "implausible",
            f"it expects {expected:,.1f} repeat orders in the next {h:g} time units, over "
            f"{IMPLAUSIBLE_FACTOR:g}× the {observed:,.1f} the shop's observed repeat rate gives",
            f"预计未来 {h:g} 个时间单位复购 {expected:,.1f} 次,超过按店铺实际复购速率"
            f"推算的 {observed:,.1f} 次的 {IMPLAUSIBLE_FACTOR:g} 倍",
        )
    return None


def _positive_definite(cov: np.ndarray) -> bool:
    if cov.size == 0 or not np.all(np.isfinite(cov)):
        return False
    try:
        np.linalg.cholesky((cov + cov.T) / 2)
    except np.linalg.LinAlgError:
        return False
    return True


@dataclass(frozen=True)
class ModelSelection:
    """The chosen model and the comparison table.

    ``table`` has one row per candidate (and per regularised refit, named
    ``"<model>+penalized"``) with ``log_likelihood``, ``aic``, ``bic``, ``penalizer``,
    ``status`` (``chosen``, ``accepted``, ``rejected`` or ``failed``), ``problem`` (the
    rejection code), ``error`` and ``error_zh`` (why it was rejected or failed; empty when
    accepted). ``reason`` / ``reason_zh`` say why the chosen model was chosen.
    """

    name: str
    model: ContinuousBTYD
    table: pd.DataFrame
    criterion: str = "bic"
    penalizer: float = 0.0
    reason: str = ""
    reason_zh: str = ""
    rejected: dict[str, str] = field(default_factory=dict)
    #: every fit that converged, accepted or not, keyed like ``table``'s index
    fits: dict[str, ContinuousBTYD] = field(default_factory=dict)


def _row(
    name: str,
    m: ContinuousBTYD | None,
    penalizer: float,
    status: str,
    problem: str,
    en: str,
    zh: str,
) -> dict[str, object]:
    return {
        "model": name,
        "log_likelihood": m.log_likelihood_ if m is not None else np.nan,
        "aic": m.aic if m is not None else np.nan,
        "bic": m.bic if m is not None else np.nan,
        "penalizer": penalizer,
        "status": status,
        "problem": problem,
        "error": en,
        "error_zh": zh,
    }


def _fit_round(
    candidates: Sequence[str],
    x: np.ndarray,
    tx: np.ndarray,
    tt: np.ndarray,
    weights: ArrayLike | None,
    penalizer: float,
    horizon: float | None,
) -> tuple[list[dict[str, object]], dict[str, ContinuousBTYD], dict[str, ContinuousBTYD]]:
    rows: list[dict[str, object]] = []
    accepted: dict[str, ContinuousBTYD] = {}
    fits: dict[str, ContinuousBTYD] = {}
    for name in candidates:
        try:
            m = MODELS[name](penalizer=penalizer).fit(x, tx, tt, weights)
        except ModelFitError as exc:
            # the model's name already heads the table row
            en = exc.message.removeprefix(f"{_LABELS[name]}: ")
            zh = exc.message_zh.removeprefix(f"{_LABELS[name]}:")
            rows.append(_row(name, None, penalizer, "failed", exc.code, en, zh))
            continue
        fits[name] = m
        problem = diagnose_fit(m, x, tx, tt, weights, horizon=horizon)
        if problem is not None:
            rows.append(
                _row(
                    name, m, penalizer, "rejected", problem.code, problem.reason, problem.reason_zh
                )
            )
            continue
        accepted[name] = m
        rows.append(_row(name, m, penalizer, "accepted", "", "", ""))
    return rows, accepted, fits


def select_model(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    candidates: Sequence[str] = ("bgnbd", "pnbd", "mbgnbd"),
    criterion: str = "bic",
    horizon: float | None = None,
) -> ModelSelection:
    """Fit every candidate, reject the unusable fits (:func:`diagnose_fit`) and keep the
    accepted one with the lowest BIC (or AIC, or the highest log-likelihood); see the
    module docstring for the regularised second round. ``horizon`` (in the data's unit)
    is the plausibility check's forecast length."""
    if criterion not in ("bic", "aic", "log_likelihood"):
        raise InputError(
            f"`criterion` must be 'bic', 'aic' or 'log_likelihood', got {criterion!r}",
            code="input.model_argument",
            message_zh=f"`criterion` 必须是 'bic'、'aic' 或 'log_likelihood',实际为 {criterion!r}",
            details={"argument": "criterion"},
        )
    unknown = [c for c in candidates if c not in MODELS]
    if unknown or not candidates:
        raise InputError(
            f"unknown model(s) {unknown}; choose from {list(MODELS)}",
            code="input.model_argument",
            message_zh=f"未知模型 {unknown};可选 {list(MODELS)}",
            details={"argument": "candidates"},
        )
    x, tx, tt = validate_rfm(frequency, recency, T)
    rows, accepted, fits = _fit_round(candidates, x, tx, tt, weights, 0.0, horizon)
    penalizer = 0.0
    if not accepted:
        penalizer = FALLBACK_PENALIZER
        more, accepted, refits = _fit_round(candidates, x, tx, tt, weights, penalizer, horizon)
        for r in more:
            r["model"] = f"{r['model']}+penalized"
        rows += more
        fits.update({f"{k}+penalized": v for k, v in refits.items()})
    table = pd.DataFrame(rows).set_index("model")
    if not accepted:
        listing = "; ".join(f"{_display(str(k))}: {r['error']}" for k, r in table.iterrows())
        listing_zh = ";".join(
            f"{_display(str(k), zh=True)}:{r['error_zh']}" for k, r in table.iterrows()
        )
        raise ModelFitError(
            f"no model could be fitted on these data: {listing}",
            code="model.no_usable_model",
            message_zh=f"没有任何模型能在这份数据上拟合:{listing_zh}",
            details={
                "candidates": {
                    str(k): {"status": str(r["status"]), "problem": str(r["problem"])}
                    for k, r in table.iterrows()
                }
            },
        )
    suffix = "+penalized" if penalizer else ""
    scores = table.loc[[n + suffix for n in accepted], criterion]
    best_key = str(scores.idxmax() if criterion == "log_likelihood" else scores.idxmin())
    best = best_key.removesuffix("+penalized")
    table.loc[best_key, "status"] = "chosen"
    rejected = {
        str(k): str(r["error"])
        for k, r in table.iterrows()
        if r["status"] in ("rejected", "failed")
    }
    reason, reason_zh = _explain(best, table, criterion, penalizer)
    return ModelSelection(
        name=best,
        model=accepted[best],
        table=table,
        criterion=criterion,
        penalizer=penalizer,
        reason=reason,
        reason_zh=reason_zh,
        rejected=rejected,
        fits=fits,
    )


def _explain(best: str, table: pd.DataFrame, criterion: str, penalizer: float) -> tuple[str, str]:
    crit = {"bic": "BIC", "aic": "AIC", "log_likelihood": "log-likelihood"}[criterion]
    crit_zh = {"bic": "BIC", "aic": "AIC", "log_likelihood": "对数似然"}[criterion]
    key = best + ("+penalized" if penalizer else "")
    value = float(table[criterion].to_dict()[key])
    label = _LABELS.get(best, best)
    best_word = "highest" if criterion == "log_likelihood" else "lowest"
    best_word_zh = "最高" if criterion == "log_likelihood" else "最低"
    en = f"{label}: the {best_word} {crit} ({value:,.2f}) of the usable fits"
    zh = f"{label}:可用拟合中 {crit_zh} {best_word_zh}({value:,.2f})"
    if penalizer:
        en += (
            f"; no candidate was usable unpenalised, so all were refitted with a ridge "
            f"penalty {penalizer:g} on the log-parameters"
        )
        zh += f";没有候选模型可直接使用,已对对数参数加 {penalizer:g} 的岭惩罚重新拟合"
    others_en = []
    others_zh = []
    for k, r in table.iterrows():
        if r["status"] in ("rejected", "failed"):
            verb_zh = "被拒绝" if r["status"] == "rejected" else "拟合失败"
            others_en.append(f"{_display(str(k))} {r['status']}: {r['error']}")
            others_zh.append(f"{_display(str(k), zh=True)} {verb_zh}:{r['error_zh']}")
    if others_en:
        en += "; " + "; ".join(others_en)
        zh += ";" + ";".join(others_zh)
    return en, zh


def fit_model(
    name: str,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> ContinuousBTYD:
    """Fit the model called ``name`` (``bgnbd``, ``pnbd``, ``mbgnbd``) or, for ``auto``,
    the one :func:`select_model` chooses."""
    if name == "auto":
        return select_model(frequency, recency, T, weights).model
    if name not in MODELS:
        raise InputError(
            f"unknown model {name!r}; choose from {['auto', *MODELS]}",
            code="input.model_argument",
            message_zh=f"未知模型 {name!r};可选 {['auto', *MODELS]}",
            details={"argument": "model"},
        )
    return MODELS[name]().fit(frequency, recency, T, weights)


def _display(key: str, zh: bool = False) -> str:
    """Display name of a table row: the model's label, tagged when it is a penalised refit."""
    name, _, penalized = key.partition("+")
    tag = ("(正则化)" if zh else " (penalized)") if penalized else ""
    return _LABELS.get(name, name) + tag
