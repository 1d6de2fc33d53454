"""The sampler duel: the same model, digits, guidance and seed through two samplers, on one clock (a tab)."""

from app.features.duel.layout import DUEL_TAB, build
from app.ui.context import Tab

TAB = Tab("Sampler duel", DUEL_TAB, build)
