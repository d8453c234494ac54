"""Shared machinery of the maximum-likelihood fitters.

Every model writes its log-likelihood per *unique* data row together with the analytic
gradient in its natural parameters; this module does the rest: input validation,
compression of the data to unique rows with weights, optimisation on log-parameters with
L-BFGS-B, the observed-information (Hessian) matrix, standard errors, confidence
intervals, AIC and BIC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy.stats import norm

from huitouke.errors import InputError, ModelFitError

FloatArray = NDArray[np.float64]

__all__ = ["FittedModel", "FloatArray", "as_float_array", "compress_rows"]

#: above this many distinct rows a fit starts from a pilot fit on a thinned sample
_PILOT_ROWS = 60_000
#: customers (summed weight) in the pilot sample
_PILOT_CUSTOMERS = 100_000

#: log-parameters are kept inside this box; a parameter that runs to the edge means the
#: data do not identify it (for example no sign of drop-out at all).
_LOG_BOUND = 18.0


def as_float_array(value: ArrayLike, name: str, *, allow_empty: bool = False) -> FloatArray:
    """A 1-D float array, or an :class:`InputError` that names the argument."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"`{name}` must be numeric: {exc}",
            code="input.model_argument",
            message_zh=f"参数 `{name}` 必须是数值:{exc}",
            details={"argument": name},
        ) from exc
    arr = np.atleast_1d(arr)
    if arr.ndim != 1:
        raise InputError(
            f"`{name}` must be one-dimensional, got shape {arr.shape}",
            code="input.model_argument",
            message_zh=f"参数 `{name}` 必须是一维数组,实际形状 {arr.shape}",
            details={"argument": name},
        )
    if arr.size == 0 and not allow_empty:
        raise InputError(
            f"`{name}` is empty",
            code="input.model_argument",
            message_zh=f"参数 `{name}` 为空",
            details={"argument": name},
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InputError(
            f"`{name}` has a missing or infinite value at position {bad}",
            code="input.model_argument",
            message_zh=f"参数 `{name}` 在位置 {bad} 有缺失或无穷值",
            details={"argument": name, "position": bad},
        )
    return arr


def _bad(name: str, what: str, what_zh: str, position: int) -> InputError:
    return InputError(
        f"`{name}` {what} (first at position {position})",
        code="input.model_argument",
        message_zh=f"参数 `{name}` {what_zh}(首个位于位置 {position})",
        details={"argument": name, "position": position},
    )


def check_nonnegative(arr: FloatArray, name: str) -> None:
    if np.any(arr < 0):
        raise _bad(name, "must not be negative", "不能为负数", int(np.flatnonzero(arr < 0)[0]))


def check_integer(arr: FloatArray, name: str) -> None:
    frac = arr != np.round(arr)
    if np.any(frac):
        raise _bad(
            name,
            "must hold whole numbers (counts)",
            "必须是整数(次数)",
            int(np.flatnonzero(frac)[0]),
        )


def check_same_length(**arrays: FloatArray) -> None:
    sizes = {k: v.size for k, v in arrays.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise InputError(
            f"arguments must have the same length, got {listing}",
            code="input.model_argument",
            message_zh=f"参数长度必须一致,实际为 {listing}",
            details={"lengths": sizes},
        )


def validate_rfm(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validate (frequency, recency, T) in the BTYD convention.

    ``frequency`` is the number of *repeat* orders, ``recency`` the age of the customer at
    the last order and ``T`` the age at the end of the observation, in one time unit.
    """
    x = as_float_array(frequency, "frequency")
    tx = as_float_array(recency, "recency")
    t = as_float_array(T, "T")
    check_same_length(frequency=x, recency=tx, T=t)
    check_nonnegative(x, "frequency")
    check_integer(x, "frequency")
    check_nonnegative(tx, "recency")
    check_nonnegative(t, "T")
    over = tx > t * (1 + 1e-12) + 1e-12
    if np.any(over):
        raise _bad("recency", "must not exceed `T`", "不能大于 `T`", int(np.flatnonzero(over)[0]))
    zero_rec = (x == 0) & (tx > 0)
    if np.any(zero_rec):
        raise _bad(
            "recency",
            "must be 0 where `frequency` is 0 (no repeat order)",
            "在 `frequency` 为 0 时必须为 0",
            int(np.flatnonzero(zero_rec)[0]),
        )
    return x, np.minimum(tx, t), t


def validate_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = as_float_array(weights, "weights")
    if w.size != n:
        raise InputError(
            f"`weights` has length {w.size} but the data have {n} rows",
            code="input.model_argument",
            message_zh=f"`weights` 长度为 {w.size},数据却有 {n} 行",
            details={"argument": "weights"},
        )
    check_nonnegative(w, "weights")
    if not np.any(w > 0):
        raise InputError(
            "`weights` are all zero",
            code="input.model_argument",
            message_zh="`weights` 全为零",
            details={"argument": "weights"},
        )
    return w


def compress_rows(
    *columns: FloatArray, weights: FloatArray | None = None
) -> tuple[list[FloatArray], FloatArray, NDArray[np.intp]]:
    """Unique rows of the given columns, their summed weights and the inverse index.

    Uses hashing (``pandas.factorize``), which is linear in the number of rows, instead of
    sorting the rows; only the unique rows are then sorted (lexicographically), so the
    result — and every fit on it, to the last bit — does not depend on the order of the
    input rows: the rows of each customer, or distinct rows with their counts as weights
    (what the Spark path collects), give the same fit.
    """
    n = columns[0].size
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for i, col in enumerate(columns):
        direct = _whole_number_codes(col) if len(columns) > 1 else None
        if direct is not None:
            # counts and whole days are their own codes: no hashing needed, the final
            # factorisation of the combined key compacts them
            codes, size = direct
        else:
            codes, uniques = pd.factorize(col)
            size = max(len(uniques), 1)
        if i and span * size >= 2**62:
            # re-factorise so the combined key stays within int64
            key = pd.factorize(key)[0].astype(np.int64)
            span = int(key.max()) + 1
        key = key * np.int64(size) + codes.astype(np.int64)
        span *= size
    if len(columns) > 1:
        key = pd.factorize(key)[0].astype(np.int64)
    inverse = key.astype(np.intp)
    n_unique = int(inverse.max()) + 1 if n else 0
    representative = np.empty(n_unique, dtype=np.intp)
    # identical rows, so any one of them represents its group
    representative[inverse] = np.arange(n, dtype=np.intp)
    uniq = [col[representative] for col in columns]
    w = np.bincount(inverse, weights=weights, minlength=n_unique).astype(np.float64)
    order = np.lexsort(uniq[::-1]) if n_unique > 1 else np.arange(n_unique)
    rank = np.empty(n_unique, dtype=np.intp)
    rank[order] = np.arange(n_unique, dtype=np.intp)
    uniq = [np.ascontiguousarray(c[order]) for c in uniq]
    return uniq, w[order], rank[inverse]


def _whole_number_codes(col: FloatArray) -> tuple[NDArray[np.int64], int] | None:
    """``col`` as int64 codes and their range when it holds only whole numbers in
    [0, 2**24) — frequencies and ages in whole days or weeks — else None."""
    if col.size == 0 or col.dtype != np.float64:
        return None
    lo, hi = float(col.min()), float(col.max())
    if not (lo >= 0 and hi < 2**24):
        return None
    codes = col.astype(np.int64)
    if not np.array_equal(codes, col):
        return None
    return codes, int(hi) + 1


@dataclass(frozen=True)
class _Data:
    """Unique rows and weights the likelihood is evaluated on."""

    columns: tuple[FloatArray, ...]
    weights: FloatArray
    #: per-fit memo of data-only quantities (unique values and codes of a column)
    cache: dict[str, Any] = field(default_factory=dict)


def unique_codes(
    values: FloatArray, cache: dict[str, Any] | None, key: str
) -> tuple[FloatArray, NDArray[np.intp]]:
    """Unique values of a column and each row's index into them, memoised in ``cache``."""
    if cache is not None and key in cache:
        found: tuple[FloatArray, NDArray[np.intp]] = cache[key]
        return found
    codes, uniques = pd.factorize(values)
    out = (np.asarray(uniques, dtype=np.float64), codes.astype(np.intp))
    if cache is not None:
        cache[key] = out
    return out


def _wsum(values: FloatArray, weights: FloatArray) -> float:
    """Weighted sum in a plain loop: BLAS ``dot`` may wake a thread pool for every call,
    which costs more than the sum itself on a busy machine."""
    return float(np.einsum("i,i->", values, weights))


class FittedModel:
    """Base of every fitter: optimisation, standard errors, information criteria.

    Subclasses define ``_param_names`` and ``_loglik(params, columns)`` returning the
    log-likelihood of each unique row and its gradient (shape ``(k, rows)``) in the
    natural parameters.
    """

    _param_names: ClassVar[tuple[str, ...]] = ()
    _model_name: ClassVar[str] = "model"

    params_: dict[str, float]
    log_likelihood_: float
    n_customers_: float
    standard_errors_: dict[str, float]
    covariance_: FloatArray
    n_iterations_: int

    def __init__(self, penalizer: float = 0.0) -> None:
        if not (math.isfinite(penalizer) and penalizer >= 0):
            raise InputError(
                f"`penalizer` must be a non-negative number, got {penalizer!r}",
                code="input.model_argument",
                message_zh=f"`penalizer` 必须是非负数,实际为 {penalizer!r}",
                details={"argument": "penalizer"},
            )
        self.penalizer = float(penalizer)

    # -- to be provided by subclasses -------------------------------------------------
    def _loglik(
        self,
        params: FloatArray,
        columns: tuple[FloatArray, ...],
        cache: dict[str, Any] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError

    def _initial_params(self, data: _Data) -> list[FloatArray]:
        raise NotImplementedError

    def _loglik_sum(self, params: FloatArray, data: _Data) -> tuple[float, FloatArray]:
        """Weighted total log-likelihood and its gradient (natural parameters). A model
        may override this with a cheaper grouped form; the default sums ``_loglik``."""
        ll, grad = self._loglik(params, data.columns, data.cache)
        return _wsum(ll, data.weights), np.array([_wsum(gi, data.weights) for gi in grad])

    # -- fitting -----------------------------------------------------------------------
    def _objective(self, theta: FloatArray, data: _Data) -> tuple[float, FloatArray]:
        """Negative mean log-likelihood and its gradient in log-parameters.

        Outside the box ``|θ| <= _LOG_BOUND`` the likelihood is evaluated on the box edge
        plus a quadratic wall, so an unconstrained optimiser cannot wander into overflow.
        """
        inside = np.clip(theta, -_LOG_BOUND, _LOG_BOUND)
        params = np.exp(inside)
        with np.errstate(all="ignore"):
            total, grad = self._loglik_sum(params, data)
        total_w = float(data.weights.sum())
        value = -total / total_w
        g = -grad / total_w * params
        outside = theta - inside
        value += 0.5 * float(np.sum(outside * outside))
        g = g + outside
        if self.penalizer:
            value += self.penalizer * float(np.sum(theta * theta))
            g = g + 2 * self.penalizer * theta
        if not (math.isfinite(value) and np.all(np.isfinite(g))):
            return math.inf, np.zeros_like(theta)
        return value, g

    def _optimise(self, data: _Data, starts: list[tuple[FloatArray, Any]]) -> Any:
        """BFGS from each start (log-parameters, optional inverse Hessian) until one
        converges inside the box; the best result, or None."""
        best: Any = None
        for theta0, hess_inv0 in starts:
            value0, _ = self._objective(theta0, data)
            if not math.isfinite(value0):
                continue
            options: dict[str, Any] = {"maxiter": 2000, "gtol": 1e-9}
            if hess_inv0 is not None:
                options["hess_inv0"] = hess_inv0
            # BFGS rather than L-BFGS-B: with k <= 4 its dense update is trivial, and
            # L-BFGS-B's LAPACK calls wake the BLAS thread pool on every iteration, which
            # costs ~10 ms each on a busy multi-core machine
            res = optimize.minimize(
                self._objective, theta0, args=(data,), jac=True, method="BFGS", options=options
            )
            if math.isfinite(res.fun) and (best is None or res.fun < best.fun - 1e-12):
                best = res
            ok = res.success or float(np.max(np.abs(res.jac))) <= 1e-5
            if ok and not np.any(np.abs(res.x) >= _LOG_BOUND - 1e-6):
                break
        return best

    def _pilot(self, data: _Data) -> tuple[FloatArray, Any] | None:
        """On many distinct rows, fit first a Poisson-thinned sample of about
        :data:`_PILOT_CUSTOMERS` customers (the same population, fewer rows): its optimum
        and inverse Hessian start the full fit a few BFGS steps from its own optimum,
        instead of the ~25 a cold start takes. The full fit still runs to ``gtol``."""
        if data.weights.size <= _PILOT_ROWS:
            return None
        share = _PILOT_CUSTOMERS / float(data.weights.sum())
        if share >= 0.5:
            return None
        thinned = np.random.default_rng(0).poisson(data.weights * share).astype(np.float64)
        keep = thinned > 0
        if not np.any(data.columns[0][keep] > 0):
            return None
        sub = _Data(tuple(np.ascontiguousarray(c[keep]) for c in data.columns), thinned[keep])
        res = self._optimise(sub, self._starts(sub))
        if res is None or not (res.success or float(np.max(np.abs(res.jac))) <= 1e-5):
            return None
        if np.any(np.abs(res.x) >= _LOG_BOUND - 1e-6):
            return None
        h = np.asarray(res.hess_inv, dtype=np.float64)
        h = (h + h.T) / 2
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            # BFGS's own estimate drifted: start from the optimum alone
            return np.asarray(res.x, dtype=np.float64), None
        return np.asarray(res.x, dtype=np.float64), h

    def _starts(self, data: _Data) -> list[tuple[FloatArray, Any]]:
        return [
            (np.clip(np.log(start), -_LOG_BOUND + 1, _LOG_BOUND - 1), None)
            for start in self._initial_params(data)
        ]

    def _fit_data(self, data: _Data) -> Self:
        starts = self._starts(data)
        pilot = self._pilot(data)
        if pilot is not None:
            starts.insert(0, pilot)
        best = self._optimise(data, starts)
        if best is None:
            raise ModelFitError(
                f"{self._model_name}: the log-likelihood is not finite at any starting point; "
                "check that the inputs are in one time unit and that T is the age at the end "
                "of the observation",
                code="model.not_converged",
                message_zh=f"{self._model_name}:所有初值下似然均非有限值;请检查输入是否为同一时间单位,T 是否为观察期末的客龄",
            )
        theta = np.asarray(best.x, dtype=np.float64)
        grad_norm = float(np.max(np.abs(best.jac))) if best.jac is not None else math.inf
        at_edge = np.abs(theta) >= _LOG_BOUND - 1e-6
        if np.any(at_edge):
            names = ", ".join(n for n, e in zip(self._param_names, at_edge, strict=True) if e)
            raise ModelFitError(
                f"{self._model_name}: parameter(s) {names} ran off to 0 or infinity, so the data "
                "do not identify them. Try a longer calibration period, more customers, a small "
                "`penalizer` (e.g. 0.001), or another model (see `select_model`).",
                code="model.not_identified",
                message_zh=f"{self._model_name}:参数 {names} 趋于 0 或无穷,数据无法识别它们。"
                "请延长校准期、增加客户数、设置较小的 `penalizer`(如 0.001)或换用其他模型。",
                details={"parameters": names},
            )
        if not best.success and grad_norm > 1e-5:
            raise ModelFitError(
                f"{self._model_name}: the optimiser did not converge ({best.message}); "
                "try a small `penalizer` (e.g. 0.001), rescaling time (weeks instead of days), "
                "or another model",
                code="model.not_converged",
                message_zh=f"{self._model_name}:优化未收敛({best.message});请尝试较小的 `penalizer`、"
                "改变时间单位(周而不是天)或换用其他模型",
            )
        params = np.exp(theta)
        self.params_ = dict(zip(self._param_names, (float(p) for p in params), strict=True))
        self.log_likelihood_, _ = self._loglik_sum(params, data)
        self.n_customers_ = float(data.weights.sum())
        self.n_iterations_ = int(best.nit)
        self._data = data
        self._compute_covariance(params, data)
        return self

    def _total_gradient(self, params: FloatArray, data: _Data) -> FloatArray:
        with np.errstate(all="ignore"):
            _, grad = self._loglik_sum(params, data)
        return grad

    def _compute_covariance(self, params: FloatArray, data: _Data) -> None:
        """Observed information: central differences of the analytic gradient."""
        k = params.size
        hess = np.empty((k, k))
        for j in range(k):
            h = 1e-5 * params[j]
            up, down = params.copy(), params.copy()
            up[j] += h
            down[j] -= h
            hess[:, j] = -(self._total_gradient(up, data) - self._total_gradient(down, data)) / (
                2 * h
            )
        hess = (hess + hess.T) / 2
        if self.penalizer:
            # a penalised fit's information includes the penalty's curvature: the
            # objective adds penalizer·n·Σ(ln p)², whose second derivative in p is
            # 2·penalizer·n·(1 − ln p)/p² (at the optimum the total is stationary, so this
            # natural-parameter Hessian is positive definite exactly when the log one is)
            n = float(data.weights.sum())
            hess = hess + np.diag(2 * self.penalizer * n * (1 - np.log(params)) / params**2)
        cov: FloatArray
        try:
            cov = np.asarray(np.linalg.inv(hess), dtype=np.float64)
        except np.linalg.LinAlgError:
            cov = np.full((k, k), np.nan)
        self.covariance_ = cov
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(cov))
        self.standard_errors_ = dict(zip(self._param_names, (float(v) for v in se), strict=True))

    # -- reporting -------------------------------------------------------------------
    def _require_fit(self) -> FloatArray:
        if not hasattr(self, "params_"):
            raise ModelFitError(
                f"{self._model_name} is not fitted yet; call `fit` first",
                code="model.not_fitted",
                message_zh=f"{self._model_name} 尚未拟合;请先调用 `fit`",
            )
        return np.array([self.params_[n] for n in self._param_names])

    def confidence_intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Wald intervals on the log scale, ``p·exp(±z·se/p)``: they stay positive."""
        self._require_fit()
        if not 0 < level < 1:
            raise InputError(
                f"`level` must be between 0 and 1, got {level}",
                code="input.model_argument",
                message_zh=f"`level` 必须介于 0 和 1 之间,实际为 {level}",
                details={"argument": "level"},
            )
        z = float(norm.ppf(0.5 + level / 2))
        out: dict[str, tuple[float, float]] = {}
        for name in self._param_names:
            p, se = self.params_[name], self.standard_errors_[name]
            factor = math.exp(z * se / p) if math.isfinite(se) else math.inf
            out[name] = (p / factor, p * factor)
        return out

    @property
    def n_params(self) -> int:
        return len(self._param_names)

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``2k − 2 LL``."""
        self._require_fit()
        return 2 * self.n_params - 2 * self.log_likelihood_

    @property
    def bic(self) -> float:
        """Bayesian information criterion, ``k ln n − 2 LL`` with n the number of customers."""
        self._require_fit()
        return self.n_params * math.log(self.n_customers_) - 2 * self.log_likelihood_

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Parameters with standard errors and confidence intervals, one row each."""
        ci = self.confidence_intervals(level)
        return pd.DataFrame(
            {
                "estimate": [self.params_[n] for n in self._param_names],
                "std_error": [self.standard_errors_[n] for n in self._param_names],
                "lower": [ci[n][0] for n in self._param_names],
                "upper": [ci[n][1] for n in self._param_names],
            },
            index=pd.Index(list(self._param_names), name="parameter"),
        )

    def set_params(self, **params: float) -> Self:
        """Use given parameter values instead of fitting (e.g. published estimates)."""
        missing = [n for n in self._param_names if n not in params]
        extra = [n for n in params if n not in self._param_names]
        if missing or extra:
            raise InputError(
                f"{self._model_name} takes parameters {', '.join(self._param_names)}",
                code="input.model_argument",
                message_zh=f"{self._model_name} 的参数为 {', '.join(self._param_names)}",
                details={"missing": missing, "unexpected": extra},
            )
        for name, value in params.items():
            if not (math.isfinite(value) and value > 0):
                raise InputError(
                    f"parameter `{name}` must be a positive number, got {value!r}",
                    code="input.model_argument",
                    message_zh=f"参数 `{name}` 必须为正数,实际为 {value!r}",
                    details={"argument": name},
                )
        self.params_ = {n: float(params[n]) for n in self._param_names}
        return self

    def __repr__(self) -> str:
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}()"
        inner = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({inner})"


def broadcast(*values: ArrayLike) -> Sequence[FloatArray]:
    """Broadcast prediction arguments to one shape (scalars allowed)."""
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    return np.broadcast_arrays(*arrays)
