"""Entropic partial optimal transport in torch (log-domain Sinkhorn).

Partial OT (problem stated in :mod:`solver`) is turned into a balanced problem
by adding one *dummy* unit to each side:

* the dummy row has weight ``b.sum() - mass`` and the dummy column has weight
  ``a.sum() - mass``, so both augmented sides carry ``a.sum() + b.sum() - mass``;
* a real unit sent to the other side's dummy is *unmatched*, at cost 0;
* dummy-to-dummy costs ``2 * max|cost| + 50 * reg`` (see ``_dummy_cost``), so
  that this entry stays empty and the real block moves exactly ``mass``.

The balanced problem is regularised with ``reg * KL(plan | a ⊗ b)`` and solved
by Sinkhorn iterations on potentials ``f`` (length ``n_x + 1``) and ``g``
(length ``n_y + 1``), dummy last, in cost units:
``plan[i, j] = a_i b_j exp((f_i + g_j - cost_ij) / reg)``. As ``reg`` shrinks,
``f`` and ``g`` tend to dual solutions of the linear program, so
``PartialResult.dual_score_x`` reads them directly.

Iterations run in the stabilised scaling form: the kernel
``exp((f_i + g_j - cost_ij) / reg)`` is built once for the current potentials
("absorbed"), and each iteration is two matrix-vector products with bounded
scalings ``u = exp(df / reg)``, ``v = exp(dg / reg)``. When a scaling leaves a
safe range the change is absorbed into ``f``, ``g`` and the kernel is rebuilt
in the log domain; far from the solution (a cold start, or scalings at their
clamp) an exact log-domain step with log-sum-exp is taken instead. So the
iterates are those of a log-domain Sinkhorn, at the price of a
matrix-vector product per half step instead of several element-wise passes
over the matrix. Steps are over-relaxed by a factor adapted to the observed
rate, and only where that keeps the dual objective rising.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from solver.exceptions import PSMDConvergenceWarning, PSMDInputError
from solver.result import PartialResult

logger = logging.getLogger(__name__)

# Default regularisation as a fraction of the mean cost.
REG_FRACTION = 0.01

# Scalings are kept within exp(+-SCALING_CLAMP); beyond ABSORB_AT (looked at
# each error check) they are absorbed into the potentials. Kernel exponents
# are clamped to [KERNEL_MIN, KERNEL_MAX]. Together these keep every sum
# of n <= 1e5 products u_i K_ij v_j below float32's exp(88), and KERNEL_MIN
# stays above float32's smallest normal number (exp(-87)), which avoids slow
# denormal arithmetic.
SCALING_CLAMP = 30.0
ABSORB_AT = 10.0
KERNEL_MIN, KERNEL_MAX = -60.0, 30.0

# Rows per block in the column sums (see ``_blocked_vecmat``).
VECMAT_BLOCK = 128

# Over-relaxation: the first value and the cap of the adaptive factor.
OMEGA_START, OMEGA_MAX = 1.3, 1.8

InitLike = PartialResult | tuple


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device to solve on.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "mps"} or str or torch.device, default="auto"
        ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU.
        Any other string accepted by ``torch.device`` (``"cuda:1"``) is passed
        through.

    Returns
    -------
    torch.device

    Raises
    ------
    PSMDInputError
        The name is not a device, or that device is not available.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise PSMDInputError(
            f"device={device!r} is not a torch device; allowed: 'auto', 'cpu', "
            "'cuda', 'mps' or a torch.device."
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PSMDInputError(
            f"device={device!r} was requested but CUDA is not available; "
            "use 'auto' or 'cpu'."
        )
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise PSMDInputError(
            f"device={device!r} was requested but Apple MPS is not available; "
            "use 'auto' or 'cpu'."
        )
    return dev


@dataclass
class _Problem:
    """Validated tensors of a batch of partial problems (one cost, B masses)."""

    cost: torch.Tensor  # (n_x, n_y), solver dtype
    wa: torch.Tensor  # (B, n_x + 1) row weights, dummy last
    wb: torch.Tensor  # (B, n_y + 1) column weights, dummy last
    reg: float
    dummy_cost: float
    masses: list[float]


@dataclass
class _State:
    """Potentials, scalings and the absorbed kernel of a batch."""

    f: torch.Tensor  # (B, n_x + 1) absorbed part, float64 (float32 on MPS)
    g: torch.Tensor  # (B, n_y + 1)
    u: torch.Tensor  # (B, n_x + 1) solver dtype, exp(df / reg)
    v: torch.Tensor  # (B, n_y + 1)
    kernel: torch.Tensor  # (B, n_x, n_y) real block
    k_row: torch.Tensor  # (B, n_x) real row -> dummy column
    k_col: torch.Tensor  # (B, n_y) dummy row -> real column
    k_dd: torch.Tensor  # (B,) dummy row -> dummy column
    omega: float = OMEGA_START  # over-relaxation factor


class SinkhornSolver:
    """Entropic partial OT between two sets of units, batched over masses.

    Parameters
    ----------
    reg : float or None, default=None
        Entropic regularisation in cost units. None uses
        ``0.01 * mean(|cost|)`` (the mean cost, for the non-negative costs of
        :mod:`solver.costs`). Smaller values approach the exact solution
        (the plan's cost is a few percent above the exact one at the default)
        and need more iterations.
    max_iter : int, default=2000
        Most Sinkhorn iterations (one row and one column update each).
    tol : float, default=1e-6
        Stop when the L1 error of the augmented row and column marginals is
        below ``tol`` (the marginals of the dummy units included).
    check_every : int, default=10
        Iterations between error checks. Checking forces the host to wait for
        the device, so on a GPU it is done rarely; ``n_iter`` is a multiple of
        it unless ``max_iter`` is reached first.
    dtype : torch.dtype, default=torch.float32
        ``torch.float32`` (fast) or ``torch.float64``.
    device : str or torch.device, default="auto"
        See :func:`resolve_device`. CUDA is only touched inside a call, never
        at import or construction, so forked workers can use it.
    callback : callable or None, default=None
        Called as ``callback(n_iter, error)`` at each check (the largest error
        over a batch), e.g. to report progress.

    Notes
    -----
    Memory is one dense ``(n_x, n_y)`` kernel per mass in the solver's dtype,
    plus the returned float64 plan. The plan is computed in the solver's dtype
    and then converted, so in float32 its entries carry float32 precision.

    Iterations grow roughly like ``1 / reg``: at ``reg = 0.01 * mean(cost)``
    a cold solve takes about 100 iterations, at ``0.001 * mean(cost)`` many
    hundreds to thousands, and far below that ``max_iter`` is reached (the
    result is then finite but flagged ``converged=False``). No
    regularisation schedule is run for you; to solve at a very small ``reg``,
    warm-start from a solve at a larger one (``init=``).

    Convergence is also slow when ``mass`` sits exactly at a kink of the
    exact cost curve, e.g. ``mass = k / n`` when exactly k pairs are much
    cheaper than all others: the dual is then nearly flat and the error can
    stall around 1e-4 to 1e-3. Moving the mass slightly off the kink, or a
    larger ``reg``, avoids it.

    In float32 the kernel exponent ``(f_i + g_j - cost_ij) / reg`` carries a
    rounding error of about ``1e-7 * max|cost| / reg``, which sets a floor
    under the reachable marginal error at very small ``reg``; use float64
    there.

    Examples
    --------
    >>> import numpy as np
    >>> cost = np.array([[0.0, 1.0], [1.0, 0.5]])
    >>> res = SinkhornSolver(reg=0.01, device="cpu")(cost, 0.4)
    >>> round(res.transported_mass, 4), bool(res.converged)
    (0.4, True)
    """

    def __init__(
        self,
        reg: float | None = None,
        *,
        max_iter: int = 2000,
        tol: float = 1e-6,
        check_every: int = 10,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "auto",
        callback: Callable[[int, float], None] | None = None,
    ) -> None:
        if reg is not None and not (math.isfinite(reg) and reg > 0):
            raise PSMDInputError(f"reg={reg!r}; a finite value > 0 or None is allowed.")
        if int(max_iter) < 1:
            raise PSMDInputError(f"max_iter={max_iter!r}; an integer >= 1 is allowed.")
        if not (math.isfinite(tol) and tol > 0):
            raise PSMDInputError(f"tol={tol!r}; a finite value > 0 is allowed.")
        if int(check_every) < 1:
            raise PSMDInputError(
                f"check_every={check_every!r}; an integer >= 1 is allowed."
            )
        if dtype not in (torch.float32, torch.float64):
            raise PSMDInputError(
                f"dtype={dtype!r}; allowed: torch.float32 or torch.float64."
            )
        self.reg = reg
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.check_every = int(check_every)
        self.dtype = dtype
        self.device = device
        self.callback = callback

    def __call__(
        self,
        cost,
        mass: float,
        *,
        a=None,
        b=None,
        init: InitLike | None = None,
    ) -> PartialResult:
        """Solve entropic partial OT at one transported mass.

        Parameters
        ----------
        cost : array-like or torch.Tensor of shape (n_x, n_y)
            Finite cost between units.
        mass : float
            Transported mass, ``0 <= mass <= min(a.sum(), b.sum())``.
        a : array-like of shape (n_x,) or None, default=None
            Non-negative row weights; None means ``1 / n_x`` each.
        b : array-like of shape (n_y,) or None, default=None
            Non-negative column weights; None means ``1 / n_y`` each.
        init : PartialResult or tuple (f, g) or None, default=None
            Warm start from potentials of a nearby solve (shapes
            ``(n_x + 1,)`` and ``(n_y + 1,)``, dummy last), typically at a
            slightly different mass; a 0.02 change of mass then takes about
            10 iterations instead of about 100. The potentials are used as
            they are: since the plan is ``a_i b_j exp(...)``, the new dummy
            weights rescale the dummy row and column by themselves, which
            moves mass exactly at the units that were partly matched.
            None starts cold with one exact log-domain step.

        Returns
        -------
        PartialResult
            ``method="sinkhorn"``; ``plan`` is float64 of shape (n_x, n_y).

        Raises
        ------
        PSMDInputError
            Bad cost, weights, mass or init.
        FloatingPointError
            Non-finite values appeared despite the stabilisation.

        Warns
        -----
        PSMDConvergenceWarning
            ``tol`` was not reached within ``max_iter`` iterations.
        """
        results = self._solve(cost, [mass], a=a, b=b, init=init)
        if not results[0].converged:
            warnings.warn(
                _not_converged(results, self.tol), PSMDConvergenceWarning, stacklevel=2
            )
        return results[0]

    def solve_many(
        self,
        cost,
        masses: Sequence[float],
        *,
        a=None,
        b=None,
        init: InitLike | Sequence[InitLike] | None = None,
    ) -> list[PartialResult]:
        """Solve at several masses in one batched computation.

        Parameters
        ----------
        cost : array-like or torch.Tensor of shape (n_x, n_y)
        masses : sequence of float of length n_masses
            Each ``0 <= mass <= min(a.sum(), b.sum())``.
        a, b : array-like of shape (n_x,), (n_y,) or None, default=None
            As in :meth:`__call__`.
        init : PartialResult, tuple (f, g), a sequence of them, or None
            One warm start for every mass, or one per mass.

        Returns
        -------
        list of PartialResult
            One per mass, in the given order. All share ``n_iter`` (the batch
            stops when every mass has converged).

        Raises
        ------
        PSMDInputError
            Bad cost, weights, masses or init.

        Warns
        -----
        PSMDConvergenceWarning
            Some mass did not reach ``tol`` within ``max_iter`` iterations.

        Notes
        -----
        Memory grows as ``n_masses * n_x * n_y``; split large grids.
        """
        masses = list(np.atleast_1d(np.asarray(masses, dtype=np.float64)))
        if not masses:
            raise PSMDInputError("masses is empty; at least one mass is required.")
        results = self._solve(cost, masses, a=a, b=b, init=init)
        if not all(r.converged for r in results):
            warnings.warn(
                _not_converged(results, self.tol), PSMDConvergenceWarning, stacklevel=2
            )
        return results

    def _solve(self, cost, masses, *, a, b, init) -> list[PartialResult]:
        """Validate, iterate and package the results of a batch."""
        start = time.perf_counter()
        device = resolve_device(self.device)
        if device.type == "mps" and self.dtype == torch.float64:
            raise NotImplementedError(
                "dtype=torch.float64 on device 'mps' is not supported (MPS has no "
                "float64); use torch.float32 or device='cpu'."
            )
        cost_np, problem = _make_problem(
            cost, masses, a, b, self.reg, self.dtype, device
        )
        f0, g0 = _initial_potentials(init, problem)
        state = _absorbed_state(problem, f0, g0, exact=init is None)
        logger.debug(
            "sinkhorn: %d mass(es), cost %s, reg %.3g, %s on %s",
            len(masses),
            tuple(problem.cost.shape),
            problem.reg,
            self.dtype,
            device,
        )
        n_iter, errors = self._iterate(problem, state)
        return _results(
            problem, state, cost_np, n_iter, errors, self.tol, device, start
        )

    def _iterate(self, problem: _Problem, state: _State) -> tuple[int, np.ndarray]:
        """Run Sinkhorn iterations until every mass meets ``tol``.

        Returns the number of iterations and the errors at each check, of
        shape (n_checks, n_masses).
        """
        errors, checked_at = [], []
        row_sums = None
        n_iter = 0
        while n_iter < self.max_iter:
            _log_step(problem, state, row_sums)
            n_iter += 1
            row_sums = None
            if n_iter % self.check_every and n_iter < self.max_iter:
                continue
            error, row_sums = _marginal_error(problem, state)
            errors.append(error)
            checked_at.append(n_iter)
            if self.callback is not None:
                self.callback(n_iter, float(error.max()))
            if _should_stop(error, self.tol):
                break
            _adapt_omega(state, errors, checked_at)
            if _rescale(problem, state):
                row_sums = None
        return n_iter, np.array(errors).reshape(-1, len(problem.masses))


def _as_cost(cost, dtype: torch.dtype, device: torch.device):
    """Return the cost as float64 numpy and as a tensor on ``device``."""
    if isinstance(cost, torch.Tensor):
        tensor = cost.detach()
        if tensor.ndim != 2:
            raise PSMDInputError(
                f"cost has shape {tuple(tensor.shape)}; a 2-D (n_x, n_y) array is "
                "required."
            )
        cost_np = tensor.to("cpu", torch.float64).numpy()
        return cost_np, tensor.to(device, dtype)
    cost_np = np.asarray(cost)
    if cost_np.dtype.kind not in "biuf":
        raise PSMDInputError(
            f"cost has dtype {cost_np.dtype}; a numeric (n_x, n_y) array is required."
        )
    if cost_np.ndim != 2:
        raise PSMDInputError(
            f"cost has shape {cost_np.shape}; a 2-D (n_x, n_y) array is required."
        )
    cost_np = cost_np.astype(np.float64, copy=False)
    return cost_np, torch.from_numpy(cost_np).to(device, dtype)


def _as_weights(w, n: int, name: str) -> np.ndarray:
    """Return validated weights of length ``n`` (uniform ``1/n`` when None)."""
    if w is None:
        return np.full(n, 1.0 / n)
    if isinstance(w, torch.Tensor):
        w = w.detach().cpu().numpy()
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise PSMDInputError(f"{name} has shape {w.shape}; shape ({n},) is required.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise PSMDInputError(
            f"{name} has negative or non-finite entries; finite weights >= 0 are "
            "required."
        )
    if not w.sum() > 0:
        raise PSMDInputError(
            f"{name} sums to 0; at least one positive weight is required."
        )
    return w


def _check_masses(
    masses, total_a: float, total_b: float, rtol: float = 1e-9
) -> list[float]:
    """Validate masses; values above the largest mass by round-off are clipped.

    ``rtol`` is the round-off allowed, relative to the largest mass: the sums
    of weights stored in float32 fall short of 1 by up to about 1e-7 (1/3158
    rounded 3158 times), and mass 1 must stay feasible for every size.
    """
    top = min(total_a, total_b)
    out = []
    for mass in masses:
        mass = float(mass)
        if not (math.isfinite(mass) and 0.0 <= mass <= top * (1 + rtol)):
            raise PSMDInputError(
                f"mass={mass!r}; allowed: 0 <= mass <= min(a.sum(), b.sum()) = "
                f"{top:.6g}."
            )
        out.append(min(mass, top))
    return out


def _dummy_cost(cost_min: float, cost_max: float, reg: float) -> float:
    """Cost of the dummy-to-dummy entry.

    The exact problem only needs it above ``-min(cost)``: mass there means
    more than ``mass`` moves through the real block. In the entropic problem
    that entry carries roughly ``exp(-(dummy_cost + marginal cost)/reg)``
    relative mass, and the marginal cost is at least ``min(cost) >=
    -max|cost|``; ``2 * max|cost| + 50 * reg`` leaves a slack of at least
    ``max|cost| + 50 * reg``, so it holds less than ``exp(-50)`` of the mass.
    """
    return 2.0 * max(abs(cost_min), abs(cost_max)) + 50.0 * reg


def _make_problem(cost, masses, a, b, reg, dtype, device):
    """Validate inputs and build the batched problem on the device."""
    cost_np, cost_t = _as_cost(cost, dtype, device)
    n_x, n_y = cost_t.shape
    if n_x < 1 or n_y < 1:
        raise PSMDInputError(f"cost has shape {(n_x, n_y)}; no side may be empty.")
    lo, hi = (float(x) for x in torch.aminmax(cost_t))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise PSMDInputError(
            "cost holds NaN or infinite values (or values beyond the dtype's range); "
            "a finite cost is required."
        )
    if reg is None:
        reg = REG_FRACTION * float(np.abs(cost_np).mean())
        if not reg > 0:
            raise PSMDInputError(
                f"reg=None gives {reg!r} (0.01 * mean |cost|, and the cost is all "
                "zero); pass reg > 0 explicitly."
            )
    a_t = torch.as_tensor(_as_weights(a, n_x, "a"), dtype=dtype)
    b_t = torch.as_tensor(_as_weights(b, n_y, "b"), dtype=dtype)

    # Dummy weights from the sums of the weights as the solver stores them,
    # so both augmented sides carry the same total despite round-off.
    total_a, total_b = float(a_t.double().sum()), float(b_t.double().sum())
    rtol = max(1e-9, 8 * torch.finfo(dtype).eps)
    masses = _check_masses(masses, total_a, total_b, rtol)
    dummy_a = torch.tensor([max(total_b - m, 0.0) for m in masses], dtype=dtype)
    dummy_b = torch.tensor([max(total_a - m, 0.0) for m in masses], dtype=dtype)
    n_batch = len(masses)
    wa = torch.cat([a_t.expand(n_batch, n_x), dummy_a[:, None]], dim=1)
    wb = torch.cat([b_t.expand(n_batch, n_y), dummy_b[:, None]], dim=1)
    problem = _Problem(
        cost=cost_t,
        wa=wa.to(device),
        wb=wb.to(device),
        reg=float(reg),
        dummy_cost=_dummy_cost(lo, hi, float(reg)),
        masses=masses,
    )
    return cost_np, problem


def _initial_potentials(init, problem: _Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """Return potentials (B, n_x + 1), (B, n_y + 1) to start from.

    They are float64 (O(n) memory, and it keeps absorbed increments exact)
    except on Apple MPS, which has no float64.
    """
    n_batch = len(problem.masses)
    n_x, n_y = problem.cost.shape
    device = problem.cost.device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    if init is None:
        return (
            torch.zeros(n_batch, n_x + 1, dtype=dtype, device=device),
            torch.zeros(n_batch, n_y + 1, dtype=dtype, device=device),
        )
    if _is_single_init(init):
        inits = [init] * n_batch
    elif isinstance(init, (list, tuple)):
        inits = list(init)
    else:
        inits = [init] * n_batch  # _init_pair names the wrong type
    if len(inits) != n_batch:
        raise PSMDInputError(
            f"init has {len(inits)} entries for {n_batch} masses; give one init or "
            "one per mass."
        )
    pairs = [_init_pair(item, n_x, n_y) for item in inits]
    f = torch.as_tensor(np.stack([p[0] for p in pairs]), dtype=dtype, device=device)
    g = torch.as_tensor(np.stack([p[1] for p in pairs]), dtype=dtype, device=device)
    return f, g


def _is_single_init(init) -> bool:
    """Whether ``init`` is one warm start (not a sequence of them)."""
    if isinstance(init, PartialResult):
        return True
    return (
        isinstance(init, tuple)
        and len(init) == 2
        and not isinstance(init[0], (PartialResult, tuple))
    )


def _init_pair(item, n_x: int, n_y: int) -> tuple[np.ndarray, np.ndarray]:
    """Extract and check (f, g) from a PartialResult or a tuple."""
    if isinstance(item, PartialResult):
        f, g = item.f, item.g
    elif isinstance(item, tuple) and len(item) == 2:
        f, g = item
    else:
        raise PSMDInputError(
            f"init of type {type(item).__name__} is not allowed; give a "
            "PartialResult or a tuple (f, g)."
        )
    if f is None or g is None:
        raise PSMDInputError("init has no potentials (f or g is None).")
    f = np.asarray(f.cpu() if isinstance(f, torch.Tensor) else f, dtype=np.float64)
    g = np.asarray(g.cpu() if isinstance(g, torch.Tensor) else g, dtype=np.float64)
    if f.shape != (n_x + 1,) or g.shape != (n_y + 1,):
        raise PSMDInputError(
            f"init potentials have shapes {f.shape} and {g.shape}; ({n_x + 1},) and "
            f"({n_y + 1},) are required (dummy unit last)."
        )
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(g))):
        raise PSMDInputError("init potentials hold NaN or infinite values.")
    return f, g


def _absorbed_state(
    problem: _Problem, f: torch.Tensor, g: torch.Tensor, *, exact: bool
) -> _State:
    """Build the kernel for potentials ``f``, ``g`` with unit scalings.

    With ``exact`` (a cold start) one exact log-domain step comes first, so
    the kernel starts near the right scale whatever ``reg`` is.
    """
    n_batch = len(problem.masses)
    n_x, n_y = problem.cost.shape
    dtype = problem.cost.dtype
    state = _State(
        f=f,
        g=g,
        u=torch.ones_like(problem.wa),
        v=torch.ones_like(problem.wb),
        kernel=torch.empty(n_batch, n_x, n_y, dtype=dtype, device=f.device),
        k_row=torch.empty(n_batch, n_x, dtype=dtype, device=f.device),
        k_col=torch.empty(n_batch, n_y, dtype=dtype, device=f.device),
        k_dd=torch.empty(n_batch, dtype=dtype, device=f.device),
    )
    for k in range(n_batch):
        if exact:
            _exact_step(problem, state, k)
        else:
            _build_kernel(problem, state, k)
    return state


def _build_kernel(problem: _Problem, state: _State, k: int) -> None:
    """Recompute member ``k``'s kernel from its potentials (log domain)."""
    reg = problem.reg
    n_x, n_y = problem.cost.shape
    dtype = problem.cost.dtype

    # Re-centre: (f + c, g - c) gives the same plan; equal means keep both
    # potentials, hence the float32 exponents below, as small as possible.
    shift = 0.5 * (state.f[k, :n_x].mean() - state.g[k, :n_y].mean())
    state.f[k] -= shift
    state.g[k] += shift
    f, g = state.f[k], state.g[k]

    kernel = state.kernel[k]
    torch.sub(
        (g[:n_y] / reg).to(dtype)[None, :], problem.cost, alpha=1.0 / reg, out=kernel
    )
    kernel.add_((f[:n_x] / reg).to(dtype)[:, None])
    kernel.clamp_(KERNEL_MIN, KERNEL_MAX).exp_()
    state.k_row[k] = _exp_clamped((f[:n_x] + g[n_y]) / reg, dtype)
    state.k_col[k] = _exp_clamped((f[n_x] + g[:n_y]) / reg, dtype)
    state.k_dd[k] = _exp_clamped((f[n_x] + g[n_y] - problem.dummy_cost) / reg, dtype)


def _exp_clamped(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``exp`` of a float64 exponent clamped like the kernel, cast to ``dtype``."""
    return x.clamp(KERNEL_MIN, KERNEL_MAX).exp().to(dtype)


def _row_sums(state: _State, wb: torch.Tensor) -> torch.Tensor:
    """Augmented ``K (wb * v)``, shape (B, n_x + 1)."""
    n_y = state.kernel.shape[2]
    bv = wb * state.v
    real = torch.matmul(state.kernel, bv[:, :n_y, None]).squeeze(-1)
    real.add_(state.k_row * bv[:, n_y, None])
    dummy = (state.k_col * bv[:, :n_y]).sum(-1) + state.k_dd * bv[:, n_y]
    return torch.cat([real, dummy[:, None]], dim=1)


def _col_sums(state: _State, wa: torch.Tensor) -> torch.Tensor:
    """Augmented ``K^T (wa * u)``, shape (B, n_y + 1)."""
    n_x = state.kernel.shape[1]
    au = wa * state.u
    real = _blocked_vecmat(au[:, :n_x], state.kernel)
    real.add_(state.k_col * au[:, n_x, None])
    dummy = (state.k_row * au[:, :n_x]).sum(-1) + state.k_dd * au[:, n_x]
    return torch.cat([real, dummy[:, None]], dim=1)


def _blocked_vecmat(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x @ kernel`` per batch member, summed over row blocks in high precision.

    A plain vector-matrix product adds the n_x terms of each column one after
    the other, and in float32 that round-off alone kept the marginal error
    above 1e-6 at n ~ 2000. Summing blocks of ``VECMAT_BLOCK`` rows as one
    batched product and adding the block sums in float64 removes that floor,
    and is no slower.
    """
    n_batch, n_x, n_y = kernel.shape
    n_blocks = n_x // VECMAT_BLOCK
    if n_blocks < 2:
        return torch.matmul(x[:, None, :], kernel).squeeze(1)
    head = n_blocks * VECMAT_BLOCK
    blocks = kernel[:, :head].view(n_batch, n_blocks, VECMAT_BLOCK, n_y)
    parts = torch.matmul(x[:, :head].reshape(n_batch, n_blocks, 1, -1), blocks)
    acc = torch.float32 if kernel.device.type == "mps" else torch.float64
    total = parts.squeeze(2).sum(1, dtype=acc)
    if head < n_x:
        tail = torch.matmul(x[:, None, head:], kernel[:, head:]).squeeze(1)
        total += tail
    return total.to(kernel.dtype)


def _log_step(problem: _Problem, state: _State, row_sums) -> None:
    """One Sinkhorn iteration: fit the row marginals, then the column ones.

    ``row_sums`` is ``K (wb * v)`` when the caller already has it, else None.
    """
    if row_sums is None:
        row_sums = _row_sums(state, problem.wb)
    state.u.copy_(_relaxed(state.u, row_sums, state.omega))
    state.v.copy_(_relaxed(state.v, _col_sums(state, problem.wa), state.omega))


def _relaxed(scaling: torch.Tensor, sums: torch.Tensor, omega: float) -> torch.Tensor:
    """Return the over-relaxed update of one side's scalings.

    In log terms, with ``t = log(current marginal / weight)``, the plain
    Sinkhorn step is ``f <- f - reg * t``; the relaxed one moves
    ``omega * reg * t``. Each unit's term of the dual objective, which is
    proportional to ``t - exp(t)``, must not decrease: where
    over-relaxing would lower it (far from the solution) the plain step is
    taken, so the dual objective still rises at every step. The scalings are
    clamped to ``exp(+-SCALING_CLAMP)`` so that nothing overflows; a member
    whose scalings reach the clamp gets an exact log-domain step at the next
    check (``_rescale``).
    """
    t = torch.log(scaling * sums)
    step = torch.where(t >= -_relax_bound(omega), omega, 1.0)
    limit = math.exp(SCALING_CLAMP)
    return (scaling * torch.exp(-step * t)).clamp_(1.0 / limit, limit)


@functools.lru_cache(maxsize=256)
def _relax_bound(omega: float) -> float:
    """Largest ``x`` for which over-relaxing at ``t = -x`` keeps the dual rising.

    With ``c = omega - 1`` the unit's dual term ``t - exp(t)`` does not drop
    when ``t`` becomes ``-c t`` iff ``t >= 0`` or ``(1 + c) x + exp(-x) >=
    exp(c x)`` for ``x = -t``; the set of such ``x`` is an interval from 0,
    whose end is found by bisection.
    """
    c = omega - 1.0
    if c <= 0.0:
        return math.inf
    lo, hi = 0.0, 1.0
    while (1 + c) * hi + math.exp(-hi) >= math.exp(c * hi):
        lo, hi = hi, 2 * hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if (1 + c) * mid + math.exp(-mid) >= math.exp(c * mid):
            lo = mid
        else:
            hi = mid
    return lo


def _adapt_omega(state: _State, errors: list, checked_at: list) -> None:
    """Update the over-relaxation factor from the observed convergence rate.

    Sinkhorn alternates two blocks of unknowns, so Young's theory of
    successive over-relaxation applies to its linearisation: a rate ``r``
    observed with factor ``omega`` gives the plain iteration's squared
    spectral radius ``mu2 = (r + omega - 1)^2 / (r omega^2)`` and the best
    factor ``2 / (1 + sqrt(1 - mu2))``, capped at ``OMEGA_MAX``.
    """
    if len(errors) < 2:
        return
    new, old = float(errors[-1].max()), float(errors[-2].max())
    if not 0.0 < new < old:
        return
    rate = (new / old) ** (1.0 / (checked_at[-1] - checked_at[-2]))
    mu2 = (rate + state.omega - 1.0) ** 2 / (rate * state.omega**2)
    if 0.0 < mu2 < 1.0:
        omega = min(OMEGA_MAX, 2.0 / (1.0 + math.sqrt(1.0 - mu2)))
        state.omega = round(omega, 2)


def _marginal_error(problem: _Problem, state: _State):
    """L1 error of the augmented marginals of each member, shape (B,).

    Also returns the row sums it computed, which the next iteration reuses.
    The column marginals are exact after a column update unless a scaling
    was clamped; both are counted.
    """
    row_sums = _row_sums(state, problem.wb)
    row_err = (problem.wa * (state.u * row_sums - 1.0).abs()).sum(-1)
    col_err = (problem.wb * (state.v * _col_sums(state, problem.wa) - 1.0).abs()).sum(
        -1
    )
    error = (row_err + col_err).to("cpu", torch.float64).numpy()
    return error, row_sums


def _should_stop(error: np.ndarray, tol: float) -> bool:
    """Stop when every member meets ``tol``; raise on non-finite errors."""
    if not np.all(np.isfinite(error)):
        raise FloatingPointError(
            "Sinkhorn produced non-finite marginals; try float64 or a larger reg."
        )
    return bool(np.all(error < tol))


def _rescale(problem: _Problem, state: _State) -> bool:
    """Absorb large scalings into the potentials; return whether any moved.

    A member whose scalings left ``exp(+-ABSORB_AT)`` has them moved into
    ``f``, ``g`` and its kernel rebuilt. One that reached the clamp (far from
    the solution, where the bounded scalings would crawl) takes an exact
    log-domain step instead.
    """
    log_u = state.u.to(state.f.dtype).log()
    log_v = state.v.to(state.g.dtype).log()
    spread = torch.maximum(log_u.abs().amax(-1), log_v.abs().amax(-1)).tolist()
    moved = False
    for k, size in enumerate(spread):
        if size <= ABSORB_AT:
            continue
        state.f[k] += problem.reg * log_u[k]
        state.g[k] += problem.reg * log_v[k]
        state.u[k] = 1.0
        state.v[k] = 1.0
        if size >= SCALING_CLAMP - 1e-3:
            _exact_step(problem, state, k)
        else:
            _build_kernel(problem, state, k)
        moved = True
    return moved


def _exact_step(problem: _Problem, state: _State, k: int) -> None:
    """One Sinkhorn iteration of member ``k`` in the log domain, then rebuild.

    ``f_i = -reg * log sum_j b_j exp((g_j - cost_ij) / reg)`` and likewise for
    ``g``, with an exact log-sum-exp over the augmented problem: it moves the
    potentials any distance in one step, at the price of several passes over
    the matrix. The kernel buffer serves as workspace. Scalings must be 1.
    """
    reg, work = problem.reg, state.kernel[k]
    n_x, n_y = problem.cost.shape
    f, g = state.f[k], state.g[k]
    log_a = problem.wa[k].to(f.dtype).log()
    log_b = problem.wb[k].to(g.dtype).log()

    col = g / reg + log_b
    torch.sub(col[:n_y].to(work.dtype)[None, :], problem.cost, alpha=1 / reg, out=work)
    real = torch.logsumexp(work, dim=1).to(f.dtype)
    f[:n_x] = -reg * torch.logaddexp(real, col[n_y])
    col[n_y] -= problem.dummy_cost / reg
    f[n_x] = -reg * torch.logsumexp(col, dim=0)

    row = f / reg + log_a
    torch.sub(row[:n_x].to(work.dtype)[:, None], problem.cost, alpha=1 / reg, out=work)
    real = torch.logsumexp(work, dim=0).to(g.dtype)
    g[:n_y] = -reg * torch.logaddexp(real, row[n_x])
    row[n_x] -= problem.dummy_cost / reg
    g[n_y] = -reg * torch.logsumexp(row, dim=0)
    _build_kernel(problem, state, k)


def _results(problem, state, cost_np, n_iter, errors, tol, device, start):
    """Package each member of the batch as a PartialResult."""
    reg = problem.reg
    f = (state.f + reg * state.u.to(state.f.dtype).log()).to("cpu", torch.float64)
    g = (state.g + reg * state.v.to(state.g.dtype).log()).to("cpu", torch.float64)
    if not (torch.isfinite(f).all() and torch.isfinite(g).all()):
        raise FloatingPointError(
            "Sinkhorn produced non-finite potentials; try float64 or a larger reg."
        )
    f, g = f.numpy(), g.numpy()
    n_x, n_y = problem.cost.shape
    au = (problem.wa * state.u)[:, :n_x]
    bv = (problem.wb * state.v)[:, :n_y]
    plan = state.kernel.mul_(au[:, :, None]).mul_(bv[:, None, :])
    plan = plan.to("cpu", torch.float64).numpy()
    elapsed = time.perf_counter() - start
    results = []
    for k, mass in enumerate(problem.masses):
        history = errors[:, k]
        converged = bool(history.size and history[-1] < tol)
        results.append(
            PartialResult(
                plan=plan[k],
                cost=cost_np,
                mass=mass,
                method="sinkhorn",
                converged=converged,
                marginal_error=float(history[-1]) if history.size else float("nan"),
                n_iter=n_iter,
                f=f[k],
                g=g[k],
                reg=reg,
                device=str(device),
                time_s=elapsed,
                errors=history.copy(),
            )
        )
    _report(results)
    return results


def _report(results: list[PartialResult]) -> None:
    """Log a debug summary of a batch."""
    logger.debug(
        "sinkhorn: %d iterations, largest marginal error %.3g, %.3f s",
        results[0].n_iter,
        max(r.marginal_error for r in results),
        results[0].time_s,
    )


def _not_converged(results: list[PartialResult], tol: float) -> str:
    """Message of the warning for members that missed ``tol``."""
    failed = [r for r in results if not r.converged]
    worst = max(r.marginal_error for r in failed)
    masses = ", ".join(f"{r.mass:.4g}" for r in failed[:5])
    return (
        f"Sinkhorn stopped after {failed[0].n_iter} iterations with marginal error "
        f"{worst:.3g} > tol={tol:g} at mass {masses}; raise max_iter or reg."
    )


def sinkhorn_entry_masses(
    cost,
    masses: Sequence[float],
    *,
    solver: SinkhornSolver | None = None,
    threshold: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Return each unit's entry mass on a grid, from one batched Sinkhorn solve.

    A unit's entry mass is the smallest grid mass at which its matched
    fraction (``n * rowsum`` for X, ``n * colsum`` for Y, uniform weights)
    exceeds ``threshold``. Smaller means better aligned; sorting by it ranks
    units when the exact path is too large to compute.

    Parameters
    ----------
    cost : array-like or torch.Tensor of shape (n_x, n_y)
    masses : sequence of float of length n_masses
        Grid of transported masses in ``[0, 1]``, any order.
    solver : SinkhornSolver or None, default=None
        The solver to use; None uses ``SinkhornSolver()``.
    threshold : float, default=1e-3
        Matched fraction above which a unit counts as active, in (0, 1).

    Returns
    -------
    entry_mass_x : ndarray of shape (n_x,)
    entry_mass_y : ndarray of shape (n_y,)
        Units never active on the grid get 1.0, the largest possible mass.

    Raises
    ------
    PSMDInputError
        Bad ``threshold`` or an empty grid (and what the solver raises).

    Notes
    -----
    Entropic plans are dense, so a unit's fraction is small but positive
    before it truly enters; ``threshold`` decides when it counts, and a
    larger ``reg`` makes entries earlier and less sharp. Ties between units
    that enter at the same grid mass are left as ties (rank them further by
    ``PartialResult.dual_score_x``). Memory is that of
    :meth:`SinkhornSolver.solve_many` over the whole grid.

    Examples
    --------
    >>> import numpy as np
    >>> cost = np.array([[0.1, 0.9], [0.9, 0.5]])
    >>> solver = SinkhornSolver(reg=0.01, device="cpu")
    >>> x, y = sinkhorn_entry_masses(cost, [0.2, 0.4, 0.6, 0.8], solver=solver)
    >>> x.tolist(), y.tolist()
    ([0.2, 0.6], [0.2, 0.6])
    """
    if not (math.isfinite(threshold) and 0.0 < threshold < 1.0):
        raise PSMDInputError(
            f"threshold={threshold!r}; a matched fraction in (0, 1) is allowed."
        )
    grid = np.sort(np.atleast_1d(np.asarray(masses, dtype=np.float64)))
    if grid.size == 0:
        raise PSMDInputError("masses is empty; at least one mass is required.")
    solver = SinkhornSolver() if solver is None else solver
    results = solver.solve_many(cost, grid)
    frac_x = np.stack([r.matched_fraction_x for r in results])
    frac_y = np.stack([r.matched_fraction_y for r in results])
    return _first_active(frac_x, grid, threshold), _first_active(
        frac_y, grid, threshold
    )


def _first_active(frac: np.ndarray, grid: np.ndarray, threshold: float) -> np.ndarray:
    """Smallest grid mass where each column of ``frac`` exceeds ``threshold``."""
    active = frac > threshold
    first = np.argmax(active, axis=0)
    return np.where(active.any(axis=0), grid[first], 1.0)
