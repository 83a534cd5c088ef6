"""Checks of rules/alerts.yaml that span its sections: every route names a sink the file defines, and
``by_strategy`` names known strategies. Each problem points at the name that is wrong."""

from __future__ import annotations

from collections.abc import Iterable

from engine.config.conditions import suggest
from engine.config.lint import Loaded, at
from engine.config.models.alerts import LEVELS, AlertRouting
from engine.config.problems import Problem


def check_alerts(item: Loaded[AlertRouting], strategies: Iterable[str] | None) -> list[Problem]:
    """Return the problems of rules/alerts.yaml; ``strategies``: the known strategy names (None: unknown, not checked)."""
    doc, model = item.doc, item.model
    # the names the file defines, read from the file itself: a sink whose settings are wrong is still defined
    raw = doc.data.get("sinks") if isinstance(doc.data, dict) else None
    sinks = {str(k) for k in raw} if isinstance(raw, dict) else set() if raw is None else None
    out: list[Problem] = []
    if sinks is not None:
        known = sorted(sinks)
        lists: list[tuple[tuple[str | int, ...], list[str]]] = []
        routes = getattr(model, "routes", None)
        if routes is not None:
            lists += [(("routes", level), routes.of(level)) for level in LEVELS]
        lists += [(("by_rule", rule), names) for rule, names in (getattr(model, "by_rule", None) or {}).items()]
        lists += [(("by_strategy", s), names) for s, names in (getattr(model, "by_strategy", None) or {}).items()]
        for path, names in lists:
            for i, name in enumerate(names):
                if name not in sinks:
                    message = (f"expected the name of a sink defined under sinks ({', '.join(known) or 'none defined'}), "
                               f"found {name!r}{suggest(name, known)}")
                    out.append(at(doc, (*path, i), message))
    by_strategy = getattr(model, "by_strategy", None) or {}
    if strategies is not None:
        names = sorted(strategies)
        for s in by_strategy:
            if s not in names:
                out.append(at(doc, ("by_strategy", s), f"expected a strategy name ({', '.join(names)}), found {s!r}{suggest(s, names)}",
                              key=True))
    return out
