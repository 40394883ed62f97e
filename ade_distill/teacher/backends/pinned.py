"""The HTTP client of a ``--local-only`` teacher: no proxy, and only the address that was checked.

Why not "refuse while a proxy is configured": proxies come from many places (``HTTP_PROXY``, ``http_proxy``,
``ALL_PROXY``, OS settings read by ``urllib.request.getproxies``, ...); a refusal that misses one of them leaks
the prompt and the key. A client that never consults the environment for proxies cannot leak through any of
them, and users with a global proxy need not unset it for a local server.

Why pin the address: :func:`~ade_distill.teacher.backends.check_local_host` resolves the host name once; if the
client resolved it again, a DNS answer that changed in between (DNS rebinding) would send the request to a
public address. :class:`PinnedTransport` connects to the checked address itself, keeping the name in the
``Host`` header and, for HTTPS, in SNI and certificate verification.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

__all__ = ["pinned_client", "openai_httpx"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def openai_httpx() -> ModuleType:
    """The httpx package the installed ``openai`` client is built on (``httpx``, or its fork ``httpx2`` in
    openai 3.x): the transport must subclass that package's classes."""
    import openai

    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.split(".")[0])


def _port(url: Any) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


@functools.cache
def _transport_class(hx: ModuleType) -> type:
    class PinnedTransport(hx.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        """Send every request for ``host:port`` to ``address``; refuse requests for any other endpoint (a
        redirect elsewhere, say) with ``ConnectError``."""

        def __init__(self, url: str, address: str) -> None:
            parsed = hx.URL(url)
            self.host, self.port, self.address = parsed.host, _port(parsed), address
            # A transport never reads proxy variables; trust_env=True only honours SSL_CERT_FILE/SSL_CERT_DIR.
            self._inner = hx.AsyncHTTPTransport(trust_env=True)

        async def handle_async_request(self, request: Any) -> Any:
            url = request.url
            if url.host != self.host or _port(url) != self.port:
                raise hx.ConnectError(f"--local-only: refusing a request to {url.host}:{_port(url)}; only "
                                      f"{self.host}:{self.port} (checked as {self.address}) is allowed",
                                      request=request)
            pinned = hx.Request(request.method, url.copy_with(host=self.address), headers=request.headers,
                                stream=request.stream,
                                extensions={**request.extensions, "sni_hostname": self.host})
            return await self._inner.handle_async_request(pinned)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return PinnedTransport


def pinned_client(url: str, address: str, **kwargs: Any) -> Any:
    """An ``openai`` async HTTP client for ``url`` that ignores proxy settings and connects to ``address``
    only (the ``Host`` header, SNI and certificate checks keep the name)."""
    import openai

    transport = _transport_class(openai_httpx())(url, address)
    return openai.DefaultAsyncHttpxClient(transport=transport, trust_env=False, **kwargs)
