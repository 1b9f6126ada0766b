"""Partner registration and secret rotation (for the console and the CLI), and the unbind
messages of a case. Secrets are shown once, when created, and stored sealed."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from closeout.audit.services import audit_record
from closeout.common import clock
from closeout.integrations import crypto
from closeout.integrations.models import Partner, PartnerSecret, UnbindDelivery
from closeout.integrations.partners import signing
from closeout.integrations.partners.port import Delivery

ROTATION_GRACE = timedelta(hours=24)
# A month for every partner to switch; longer would keep a leaked secret signing for as long.
MAX_GRACE_HOURS = 720
MAX_ROTATION_GRACE = timedelta(hours=MAX_GRACE_HOURS)
# The code is part of the simulator's address `/sim/partners/<slug:code>/webhook`: ASCII only.
CODE_PATTERN = re.compile(r"[a-z0-9_-]{1,40}")
DEMO_PARTNERS = (("maps-app", "Maps app"), ("transit-wallet", "Transit wallet"), ("city-pay", "City Pay"))


class UnableToRegisterPartner(Exception):
    pass


class PartnerNotFound(Exception):
    def __init__(self, code: str):
        self.code = code
        super().__init__(f"no partner {code!r} is registered")


class UnableToRotateSecret(Exception):
    pass


def _seal(partner_code: str, secret: str) -> str:
    return crypto.seal(secret, context=f"partner:{partner_code}")


def _check_url(url: str) -> str:
    """Return the endpoint a partner's unbind messages may be posted to.

    Only http(s), and never a link-local address or a known metadata host name: 169.254.169.254
    and its kin answer with cloud credentials to whoever asks from inside the machine, and the
    worker would post there for anyone who may register a partner. Loopback stays allowed: the
    built-in simulator is there. A name is checked here as written; the adapter checks again what
    it resolves to at each delivery and posts to that checked address (a name can be pointed
    elsewhere after registration).

    :raises UnableToRegisterPartner:
    """
    url = (url or "").strip()
    if not url.startswith(("https://", "http://")) or len(url) > 300:
        raise UnableToRegisterPartner("endpoint must be an http(s) URL of at most 300 characters")
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:
        raise UnableToRegisterPartner("endpoint must be an http(s) URL with a host") from exc
    if not host:
        raise UnableToRegisterPartner("endpoint must be an http(s) URL with a host")
    if "@" in urlsplit(url).netloc:
        # Not echoed: the text before the @ is a password. A partner checks the message's signature.
        raise UnableToRegisterPartner("endpoint must not hold a user name or password (user:password@host): "
                                      "partners check each webhook's signature, made with the secret printed "
                                      "at registration")
    if _is_metadata_host(host):
        raise UnableToRegisterPartner(f"endpoint host {host} is a link-local or cloud metadata address")
    return url


NAME_MAX_LENGTH = Partner._meta.get_field("name").max_length


def _check_name(name: str) -> str:
    """Return the partner's name as it is kept, whole: a name cut short could be another partner's.

    :raises UnableToRegisterPartner: for a name longer than NAME_MAX_LENGTH.
    """
    name = (name or "").strip()
    if len(name) > NAME_MAX_LENGTH:
        raise UnableToRegisterPartner(f"name is {len(name)} characters long; at most {NAME_MAX_LENGTH} fit")
    return name


def without_credentials(url: str) -> str:
    """The URL with any user name and password before its host masked, for listings of partners
    registered before such endpoints were refused."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


# Metadata services reached by name or by an address outside the link-local ranges (AWS's IPv6 one).
METADATA_HOSTS = ("metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                  "instance-data.ec2.internal")
METADATA_ADDRESSES = (ipaddress.ip_address("fd00:ec2::254"),)


def _is_metadata_host(host: str) -> bool:
    if host.rstrip(".").lower() in METADATA_HOSTS:
        return True
    address = _ip_literal(host)
    return address is not None and is_forbidden_address(address)


def is_forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether unbind messages must never be posted to `address` (link-local or a metadata service)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_link_local or address in METADATA_ADDRESSES


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names by itself, also in the forms an HTTP client's resolver accepts
    (`2852039166`, `0xa9.0xfe.0xa9.0xfe`, `169.254.43518`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def simulator_endpoint(code: str) -> str:
    return f"{settings.PUBLIC_URL}/sim/partners/{code}/webhook"


def partner_register(*, code: str, name: str, endpoint_url: str, actor: str) -> tuple[Partner, str]:
    """Register a partner and return it with its first signing secret (shown only now).

    :raises UnableToRegisterPartner: for a taken code or a bad endpoint.
    """
    code = (code or "").strip().lower()
    if not CODE_PATTERN.fullmatch(code):
        raise UnableToRegisterPartner("code must be 1-40 ASCII letters, digits, '-' or '_'")
    name = _check_name(name)
    endpoint_url = _check_url(endpoint_url)
    secret = signing.new_secret()
    now = clock.now()
    with transaction.atomic():
        if Partner.objects.filter(code=code).exists():
            raise UnableToRegisterPartner(f"partner {code} is already registered")
        partner = Partner.objects.create(code=code, name=name or code, endpoint_url=endpoint_url,
                                         created_at=now)
        PartnerSecret.objects.create(partner=partner, sealed=_seal(code, secret), hint=secret[-4:], created_at=now)
        audit_record(actor=actor, action="partner.register", subject=f"partner:{code}", after="active",
                     data={"endpoint": endpoint_url})
    return partner, secret


def partner_update(*, code: str, actor: str, name: str | None = None, endpoint_url: str | None = None,
                   active: bool | None = None) -> Partner:
    """Change a partner's name, endpoint or active flag.

    :raises PartnerNotFound:
    :raises UnableToRegisterPartner: for a bad endpoint.
    """
    with transaction.atomic():
        partner = Partner.objects.select_for_update().filter(code=code).first()
        if partner is None:
            raise PartnerNotFound(code)
        before = {"name": partner.name, "endpoint": partner.endpoint_url, "active": partner.active}
        if name is not None:
            partner.name = _check_name(name) or partner.code
        if endpoint_url is not None:
            partner.endpoint_url = _check_url(endpoint_url)
        if active is not None:
            partner.active = active
        partner.save()
        audit_record(actor=actor, action="partner.update", subject=f"partner:{code}",
                     before="active" if before["active"] else "inactive",
                     after="active" if partner.active else "inactive",
                     data={"before": before, "after": {"name": partner.name, "endpoint": partner.endpoint_url,
                                                       "active": partner.active}})
    return partner


def partner_secret_rotate(*, code: str, actor: str, grace: timedelta = ROTATION_GRACE) -> str:
    """Issue a new signing secret; the older ones keep signing for `grace`, then expire.

    Returns the new secret (shown only now).

    :raises UnableToRotateSecret: for a grace below zero or above MAX_ROTATION_GRACE.
    :raises PartnerNotFound:
    """
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise UnableToRotateSecret(f"the grace must be from 0 to {MAX_GRACE_HOURS} hours")
    secret = signing.new_secret()
    now = clock.now()
    with transaction.atomic():
        partner = Partner.objects.select_for_update().filter(code=code).first()
        if partner is None:
            raise PartnerNotFound(code)
        PartnerSecret.objects.filter(partner=partner).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now + grace)).update(expires_at=now + grace)
        PartnerSecret.objects.create(partner=partner, sealed=_seal(code, secret), hint=secret[-4:], created_at=now)
        audit_record(actor=actor, action="partner.secret_rotate", subject=f"partner:{code}",
                     reason=f"old secrets expire in {grace}")
    return secret


def partner_secrets(*, code: str, now=None) -> tuple[str, ...]:
    """Every secret of the partner still valid, newest first."""
    now = now or clock.now()
    rows = (PartnerSecret.objects.filter(partner__code=code)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by("-created_at", "-id"))
    return tuple(crypto.unseal(row.sealed, context=f"partner:{code}") for row in rows)


def partner_list() -> list[dict]:
    """Partners with their secrets' hints and expiry (never the secrets), for the console."""
    now = clock.now()
    out = []
    for partner in Partner.objects.order_by("code").prefetch_related("secrets"):
        out.append({
            "code": partner.code, "name": partner.name, "endpoint_url": without_credentials(partner.endpoint_url),
            "active": partner.active, "created_at": partner.created_at,
            "secrets": [{"hint": s.hint, "created_at": s.created_at, "expires_at": s.expires_at,
                         "valid": s.expires_at is None or s.expires_at > now}
                        for s in sorted(partner.secrets.all(), key=lambda s: s.created_at, reverse=True)],
        })
    return out


def partners_demo_load() -> int:
    """Register the demo partners at the built-in simulated endpoints; return how many were new.

    A demo partner still pointing at the simulator of another address (the demo ran on another
    port before) is moved to this one's; a partner someone pointed elsewhere is left alone.
    """
    created = 0
    for code, name in DEMO_PARTNERS:
        partner = Partner.objects.filter(code=code).first()
        if partner is None:
            partner_register(code=code, name=name, endpoint_url=simulator_endpoint(code), actor="system:demo")
            created += 1
        elif partner.endpoint_url.endswith(f"/sim/partners/{code}/webhook") and \
                partner.endpoint_url != simulator_endpoint(code):
            partner_update(code=code, actor="system:demo", endpoint_url=simulator_endpoint(code))
    return created


def unbind_message(*, case, binding) -> Delivery | None:
    """The unbind message for one binding of a case, or None when the partner is not registered."""
    partner = Partner.objects.filter(code=binding.partner, active=True).first()
    if partner is None:
        return None
    message_id = f"{case.reference}:unbind:{binding.partner}"
    body = json.dumps({
        "type": "card.unbind",
        "timestamp": clock.now().isoformat(),
        "data": {"binding_ref": binding.external_ref, "card_last4": case.card.number[-4:],
                 "closure_reference": case.reference, "reason": "card_closed"},
    }, separators=(",", ":"))
    return Delivery(partner=partner.code, endpoint_url=partner.endpoint_url, message_id=message_id, body=body,
                    secrets=partner_secrets(code=partner.code))


def unbind_results(*, case) -> list[dict]:
    """Each partner's unbind result on the case, for the case page and the console."""
    return [
        {"partner": d.partner, "status": d.status, "attempts": d.attempts, "last_status_code": d.last_status_code,
         "last_error": d.last_error, "acknowledged_at": d.acknowledged_at}
        for d in UnbindDelivery.objects.filter(case=case).order_by("partner")
    ]
