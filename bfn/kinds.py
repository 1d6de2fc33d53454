"""The factory: every flow kind by name, as a model's config.json names it.

Adding a kind is one module whose class satisfies `bfn.flow.Flow`, plus one entry here.
"""

from __future__ import annotations

import dataclasses

from bfn.continuous import ContinuousFlow
from bfn.discrete import DiscreteFlow
from bfn.flow import Flow

FLOWS: dict[str, type] = {"discrete": DiscreteFlow, "continuous": ContinuousFlow}


def make_flow(kind: str, **params: float) -> Flow:
    """Build the flow named `kind` with its hyperparameters (a config's "flow" entry)."""
    try:
        cls = FLOWS[kind]
    except KeyError:
        raise ValueError(f"unknown flow kind {kind!r}; expected one of {tuple(FLOWS)}") from None
    accepted = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"a {kind} flow takes no parameter {', '.join(unknown)}; its parameters: {', '.join(sorted(accepted))}")
    return cls(**params)
