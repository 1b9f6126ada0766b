"""Unbind webhooks over HTTPS to each partner's registered endpoint."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx

from closeout.integrations import http
from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.partners import signing
from closeout.integrations.partners.port import Delivery, DeliveryResult
from closeout.integrations.partners.services import is_forbidden_address

# host, port -> the addresses it resolves to now
Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class HttpPartnerNotifier:
    def __init__(self, *, transport: httpx.BaseTransport | None = None, resolver: Resolver | None = None):
        self._transport = transport
        self._resolve = resolver or resolve

    def send(self, delivery: Delivery) -> DeliveryResult:
        headers = signing.headers(message_id=delivery.message_id, body=delivery.body, secrets=delivery.secrets)
        url, extensions = self._pinned(delivery, headers)
        try:
            with httpx.Client(timeout=http.TIMEOUT, transport=self._transport) as client:
                response = client.post(url, content=delivery.body.encode(), headers=headers, extensions=extensions)
        except httpx.TimeoutException as exc:
            raise TransientError(f"partner {delivery.partner}: timed out") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"partner {delivery.partner}: {type(exc).__name__}") from exc
        ok = 200 <= response.status_code < 300
        return DeliveryResult(acknowledged=ok, status_code=response.status_code,
                              error="" if ok else f"answered {response.status_code}")

    def _pinned(self, delivery: Delivery, headers: dict) -> tuple[str, dict]:
        """The endpoint with its host replaced by the address the host resolves to now, once that
        address is checked, so that the message goes where it was checked to go (a name pointed
        at another address between the check and the connection is not followed). The request
        keeps the host name in its Host header and, over TLS, in SNI and the certificate check.

        :raises PermanentError: when the host resolves to a link-local or metadata address.
        :raises TransientError: when it does not resolve.
        """
        parts = urlsplit(delivery.endpoint_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self._resolve(host, port)]
            except OSError as exc:
                raise TransientError(f"partner {delivery.partner}: endpoint host does not resolve") from exc
        if not addresses:
            raise TransientError(f"partner {delivery.partner}: endpoint host does not resolve")
        if any(is_forbidden_address(a) for a in addresses):
            raise PermanentError(f"partner {delivery.partner}: endpoint host resolves to a link-local or "
                                 "cloud metadata address")
        address = addresses[0]
        shown = f"[{address}]" if address.version == 6 else str(address)
        userinfo, _, hostport = parts.netloc.rpartition("@")
        netloc = (f"{userinfo}@" if userinfo else "") + shown + (f":{parts.port}" if parts.port else "")
        headers["Host"] = hostport
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return urlunsplit(parts._replace(netloc=netloc)), extensions
