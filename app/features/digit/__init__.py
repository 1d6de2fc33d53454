"""Your digit through the BFN: a drawing (or a digit just generated) scored, seen in training and completed by
every model, below the generation."""

from app.features.digit.layout import build

__all__ = ["build"]
