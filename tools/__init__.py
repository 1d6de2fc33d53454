"""Tools that measure a running app (`python -m tools.loadtest`, `python -m tools.soak`); not part of the app."""
