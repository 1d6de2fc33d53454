"""BFN Studio: the Gradio app that shows a Bayesian Flow Network generating digits (`python -m app`).

The app reads by feature. `core/` runs and keeps: one run engine for generations, duel sides and completions
(`runs`), one store of sessions (`store`), compact frames, CPU sharing, memory, the loaded models, checked
settings. `ui/` is what every feature draws with and gets (`context`: the models, the store, the pace of
streams). `features/` holds one folder or module per part of the page, and `page` puts them together;
`server` serves it. All maths, and every fact about a flow's kind, lives in `bfn`; this package only runs,
stores and draws.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
