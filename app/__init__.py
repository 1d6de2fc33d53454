"""BFN Studio: the Gradio app that shows a Bayesian Flow Network generating digits (`python -m app`).

Modules: `params` (checked run settings), `frames` (compact per-step storage), `session` (runs and
per-session state), `render` (pure images/figures/exports), `models` (shared model loading, by name),
`handlers` (the events and the views they return, streaming), `layout` (the page and its wiring), `server`
(serving: launch settings, the file cache's budget, SIGTERM), `memory` (frames whose memory goes back to the
system), `loadtest` and `soak` (measuring a running server). All maths,
and every fact about a flow's kind, lives in `bfn`; this package only runs, stores and draws.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
