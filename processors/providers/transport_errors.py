"""A call that got no HTTP reply, typed by what actually failed on the way.

The HTTP stack wraps the socket's error in layers (aiohttp's connector errors,
then httpx's; httpx-aiohttp reports even a refused connection as a
`ConnectTimeout`), so the cause is read from the whole exception chain, the
innermost first:

| in the chain                                         | type       | cause           |
|------------------------------------------------------|------------|-----------------|
| ConnectionRefusedError                               | connection | refused         |
| socket.gaierror, a DNS connector error               | connection | dns             |
| ssl.SSLError, a certificate or SSL connector error   | connection | tls             |
| ConnectionResetError, a dropped or broken connection | connection | reset           |
| a timeout while connecting                           | timeout    | connect_timeout |
| no answer within the call timeout                    | timeout    | read_timeout    |

Operators see the cause in the response's error and in the metrics: "the
provider's host does not resolve" and "the provider is slow" need different fixes.
"""

from __future__ import annotations

import socket
import ssl

import httpx

from tierline.processors.errors import ProviderError
from tierline.schemas import ErrorType

_RESET_NAMES = ("ServerDisconnectedError", "RemoteProtocolError", "ReadError", "WriteError")
_DNS_NAMES = ("ClientConnectorDNSError",)
_TLS_NAMES = ("ClientConnectorCertificateError", "ClientConnectorSSLError", "ClientSSLError")


def transport_failure(exc: BaseException, model: str, timeout_s: float) -> ProviderError:
    """The typed error for a call that ended without an HTTP reply."""
    cause = failure_cause(exc)
    if cause in ("connect_timeout", "read_timeout"):
        what = "no connection" if cause == "connect_timeout" else "no answer"
        return ProviderError(
            ErrorType.TIMEOUT, f"{model}: {what} within {timeout_s:g}s", cause=cause
        )
    detail = _innermost(exc)
    return ProviderError(
        ErrorType.CONNECTION,
        f"{model}: connection {cause}: {type(detail).__name__} {detail}"[:300],
        cause=cause,
    )


def failure_cause(exc: BaseException) -> str:
    chain = _chain(exc)
    for link in reversed(chain):  # innermost first
        name = type(link).__name__
        if isinstance(link, ConnectionRefusedError):
            return "refused"
        if isinstance(link, socket.gaierror) or name in _DNS_NAMES:
            return "dns"
        if isinstance(link, ssl.SSLError) or name in _TLS_NAMES:
            return "tls"
        if isinstance(link, ConnectionResetError | BrokenPipeError) or name in _RESET_NAMES:
            return "reset"
    if any(isinstance(link, httpx.ConnectTimeout) for link in chain):
        return "connect_timeout"
    if any(isinstance(link, TimeoutError | httpx.TimeoutException) for link in chain):
        return "read_timeout"
    return "reset"


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in out and len(out) < 20:
        out.append(link)
        link = link.__cause__ or link.__context__
    return out


def _innermost(exc: BaseException) -> BaseException:
    return _chain(exc)[-1]
