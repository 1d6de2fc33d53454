"""BFN Studio: the Gradio app that shows a Bayesian Flow Network generating digits (`python -m app`).

Modules: `params` (checked run settings), `frames` (compact per-step storage), `session` (runs and
per-session state), `render` (pure images/figures/exports), `models` (shared model loading), `ui` (layout,
events, streaming). All maths lives in `bfn`; this package only runs, stores and draws.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
