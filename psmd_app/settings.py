"""What the user chose, and its round trip through the address bar.

A :class:`Settings` is the whole of the small state the browser holds:
dataset, layer or region, cost, method, regularisation, unmatched mass ε and
the selected unit. :func:`settings_from_query` reads it from a query string
(tolerant: a bad value falls back to its default and is reported), and
:func:`settings_to_query` writes it back, so any view can be bookmarked or
sent and opens the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from urllib.parse import parse_qs, urlencode

COSTS = ("correlation", "sqeuclidean")
METHODS = ("sinkhorn", "exact")
SIDES = ("x", "y")

# The exact solver (whole ε-path, successive shortest paths) is offered up to
# this many units per side; beyond it only Sinkhorn is available.
EXACT_MAX_UNITS = 3000

DEFAULT_UNMATCHED = 0.3
UNMATCHED_STEP = 0.01
UNMATCHED_MAX = 0.99


@dataclass(frozen=True)
class Settings:
    """One complete choice of data, method and ε.

    Attributes
    ----------
    dataset : str
        Sample (or user dataset) name.
    view : str
        Layer or region inside the dataset.
    cost : {"correlation", "sqeuclidean"}
    method : {"sinkhorn", "exact"}
    reg : float or None
        Entropic regularisation in cost units; None means the solver default
        (3% of the mean cost, see ``psmd_app.state.APP_REG_FRACTION``).
    unmatched : float
        The unmatched mass ε in [0, 1); the transported mass is ``1 - ε``.
    unit_side, unit : str or None, int or None
        The selected unit: side ``"x"`` or ``"y"`` and its column index in
        the dataset (before any unit was excluded).
    """

    dataset: str
    view: str
    cost: str = "correlation"
    method: str = "sinkhorn"
    reg: float | None = None
    unmatched: float = DEFAULT_UNMATCHED
    unit_side: str | None = None
    unit: int | None = None

    @property
    def mass(self) -> float:
        """Transported mass ``1 - unmatched``."""
        return 1.0 - self.unmatched

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (what a ``dcc.Store`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Settings:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def with_unit(self, side: str | None, unit: int | None) -> Settings:
        """Return a copy with another selected unit (None clears it)."""
        return replace(self, unit_side=side, unit=None if unit is None else int(unit))


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def snap_unmatched(value: float) -> float:
    """Clip ε to ``[0, UNMATCHED_MAX]`` and round it to the slider's step."""
    value = min(max(float(value), 0.0), UNMATCHED_MAX)
    return round(round(value / UNMATCHED_STEP) * UNMATCHED_STEP, 6)


def parse_unit(text: str | None) -> tuple[str | None, int | None]:
    """Read a unit reference such as ``"x12"`` or ``"y:3"``; (None, None) if bad."""
    if not text:
        return None, None
    text = text.strip().lower().replace(":", "")
    side, digits = text[:1], text[1:]
    if side in SIDES and digits.isdigit():
        return side, int(digits)
    return None, None


def settings_from_query(
    search: str | None,
    catalog: Mapping[str, Sequence[str]],
    default_dataset: str,
) -> tuple[Settings, list[str]]:
    """Build settings from a query string, falling back to defaults.

    Parameters
    ----------
    search : str or None
        The address bar's query string, with or without the leading ``?``.
    catalog : mapping of str to sequence of str
        Each dataset name and its views (layers or regions), first = default.
    default_dataset : str
        Used when the query names no dataset or an unknown one.

    Returns
    -------
    settings : Settings
    problems : list of str
        One sentence per value that was not acceptable and was replaced.
    """
    query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    problems: list[str] = []

    dataset = query.get("dataset", default_dataset)
    if dataset not in catalog:
        problems.append(f"dataset {dataset!r} is not known; showing {default_dataset}.")
        dataset = default_dataset
    views = list(catalog[dataset])
    view = query.get("view", views[0])
    if view not in views:
        problems.append(f"{dataset} has no layer or region {view!r}; using {views[0]}.")
        view = views[0]

    cost = query.get("cost", COSTS[0])
    if cost not in COSTS:
        problems.append(f"cost {cost!r} is not known; allowed: {', '.join(COSTS)}.")
        cost = COSTS[0]
    method = query.get("method", METHODS[0])
    if method not in METHODS:
        problems.append(
            f"method {method!r} is not known; allowed: {', '.join(METHODS)}."
        )
        method = METHODS[0]

    reg = None
    if query.get("reg", "auto") != "auto":
        reg = _parse_float(query["reg"])
        if reg is None or reg <= 0:
            problems.append(f"reg {query['reg']!r} must be a number > 0; using auto.")
            reg = None

    unmatched = DEFAULT_UNMATCHED
    if "eps" in query:
        value = _parse_float(query["eps"])
        if value is None or not 0.0 <= value < 1.0:
            problems.append(
                f"eps {query['eps']!r} must lie in [0, 1); using {unmatched}."
            )
        else:
            unmatched = snap_unmatched(value)

    side, unit = parse_unit(query.get("unit"))
    if query.get("unit") and side is None:
        problems.append(f"unit {query['unit']!r} is not like 'x12' or 'y3'; ignored.")
    settings = Settings(dataset, view, cost, method, reg, unmatched, side, unit)
    return settings, problems


def settings_to_query(settings: Settings) -> str:
    """Write settings as a query string starting with ``?``."""
    query = {
        "dataset": settings.dataset,
        "view": settings.view,
        "cost": settings.cost,
        "method": settings.method,
        "reg": "auto" if settings.reg is None else f"{settings.reg:g}",
        "eps": f"{settings.unmatched:g}",
    }
    if settings.unit_side is not None and settings.unit is not None:
        query["unit"] = f"{settings.unit_side}{settings.unit}"
    return "?" + urlencode(query)
