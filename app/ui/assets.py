"""The page's CSS and JavaScript, as files beside this module: `style.css` goes to the page whole (`STYLE`), and
each function of `page.js` goes to the event that runs it (`script`).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STYLE = HERE / "style.css"
SCRIPTS = HERE / "page.js"
FUNCTION = re.compile(r"^function (\w+)\(.*?^}$", re.MULTILINE | re.DOTALL)  # a top-level function of page.js


@functools.cache
def functions() -> dict[str, str]:
    """page.js's functions by name, each its source text."""
    return {m.group(1): m.group(0) for m in FUNCTION.finditer(SCRIPTS.read_text(encoding="utf-8"))}


def script(name: str, *args: Any) -> str:
    """An event's `js`: the function `name` of page.js called with `args` (as JSON) and then the event's inputs."""
    bound = "".join(f"{json.dumps(arg)}, " for arg in args)
    return f"(...inputs) => ({functions()[name]})({bound}...inputs)"
