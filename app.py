"""Hugging Face Spaces entry point (README front matter `app_file: app.py`): the same as `python -m app`.

Spaces set GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT, which the CLI uses as its defaults. (`import
app` below finds the app/ package, not this file: a package directory takes precedence over a module.)
"""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
