"""One SSL context for every HTTP client the tests open.

httpx builds a fresh SSL context for each client, loading the whole CA bundle (about 20 ms of CPU), and
gradio_client opens a client for every request it makes: in the tests that call the app through its API, that
was up to half of their CPU. The tests speak plain HTTP to 127.0.0.1, so all their clients can share the one
context httpx builds by default; any other verification setting still gets a context of its own.
"""

from __future__ import annotations

import functools
import ssl

import httpx._transports.default as transport  # where httpx's clients build their SSL context


def share_one_ssl_context() -> None:
    """From now on, every httpx client in this process made with the default verification shares one context."""
    make = transport.create_ssl_context
    if getattr(make, "shared", False):
        return
    default = functools.cache(lambda trust_env: make(verify=True, cert=None, trust_env=trust_env))

    def create(verify: ssl.SSLContext | str | bool = True, cert=None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is True and cert is None:
            return default(trust_env)
        return make(verify=verify, cert=cert, trust_env=trust_env)

    create.shared = True
    transport.create_ssl_context = create
