"""Partner apps: registration, secret rotation, and the signed unbind webhooks a closure sends,
each partner's result kept on the case."""

from __future__ import annotations

from datetime import timedelta

import pytest

from closeout.audit.models import AuditEvent
from closeout.closures import services, states
from closeout.closures.models import ClosureCase
from closeout.common import clock
from closeout.integrations.models import PartnerSecret, SimPartnerDelivery, UnbindDelivery
from closeout.integrations.partners import services as partners
from closeout.integrations.partners import signing
from tests.fixtures import wait_for


@pytest.mark.django_db
class TestRegistration:
    def test_a_partner_gets_a_secret_once_and_the_database_holds_it_sealed(self):
        partner, secret = partners.partner_register(code="Maps-App", name="Maps", actor="staff:ops",
                                                    endpoint_url="https://maps.example/hooks/closeout")

        assert partner.code == "maps-app" and secret.startswith("whsec_")
        assert secret not in PartnerSecret.objects.get().sealed
        assert partners.partner_secrets(code="maps-app") == (secret,)
        listed = partners.partner_list()
        assert listed[0]["secrets"][0]["hint"] == secret[-4:] and secret not in str(listed)
        assert AuditEvent.objects.filter(action="partner.register", subject="partner:maps-app").exists()

    @pytest.mark.parametrize("code,url", [("maps app", "https://x.example"), ("maps", "ftp://x.example"),
                                          ("", "https://x.example")])
    def test_bad_codes_and_endpoints_are_refused(self, code, url):
        with pytest.raises(partners.UnableToRegisterPartner):
            partners.partner_register(code=code, name="x", endpoint_url=url, actor="staff:ops")

    @pytest.mark.parametrize("url", ["http://127.0.0.1:8000/sim/partners/maps-app/webhook", "http://localhost/hook",
                                     "http://[::1]/hook", "https://maps.example/hooks/closeout"])
    def test_loopback_and_public_endpoints_are_accepted(self, url):
        partner, _ = partners.partner_register(code="maps-app", name="Maps", endpoint_url=url, actor="staff:ops")

        assert partner.endpoint_url == url

    @pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://169.254.43518/",
                                     "http://0xa9.0xfe.0xa9.0xfe/", "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254]/",
                                     "http://metadata.google.internal./", "http:///no-host"])
    def test_an_endpoint_can_never_be_moved_to_a_metadata_address(self, url):
        partners.partner_register(code="maps-app", name="Maps", endpoint_url="https://maps.example/h", actor="s")

        with pytest.raises(partners.UnableToRegisterPartner, match="endpoint"):
            partners.partner_update(code="maps-app", endpoint_url=url, actor="staff:ops")

    def test_a_code_is_registered_once(self):
        partners.partner_register(code="wallet", name="W", endpoint_url="https://w.example", actor="staff:ops")
        with pytest.raises(partners.UnableToRegisterPartner):
            partners.partner_register(code="wallet", name="W", endpoint_url="https://w.example", actor="staff:ops")

    def test_during_a_rotation_both_secrets_sign_and_afterwards_only_the_new_one(self):
        _, old = partners.partner_register(code="wallet", name="W", endpoint_url="https://w.example", actor="s")
        new = partners.partner_secret_rotate(code="wallet", actor="staff:ops", grace=timedelta(hours=2))

        assert partners.partner_secrets(code="wallet") == (new, old)
        headers = signing.headers(message_id="m-1", body="{}", secrets=partners.partner_secrets(code="wallet"))
        assert len(headers["webhook-signature"].split()) == 2
        for secret in (old, new):  # a partner still on the old secret and one already on the new both verify
            signing.verify(secret=secret, body="{}", headers=headers)

        later = clock.now() + timedelta(hours=3)
        assert partners.partner_secrets(code="wallet", now=later) == (new,)

    @pytest.mark.parametrize("hours", [-1, 721])
    def test_a_grace_below_zero_or_beyond_a_month_is_refused(self, hours):
        _, old = partners.partner_register(code="wallet", name="W", endpoint_url="https://w.example", actor="s")

        with pytest.raises(partners.UnableToRotateSecret):
            partners.partner_secret_rotate(code="wallet", actor="staff:ops", grace=timedelta(hours=hours))
        assert partners.partner_secrets(code="wallet") == (old,)

    def test_rotating_an_unknown_partner_fails_loudly(self):
        with pytest.raises(partners.PartnerNotFound):
            partners.partner_secret_rotate(code="nobody", actor="staff:ops")

    def test_the_endpoint_can_be_changed_and_the_partner_switched_off(self):
        partners.partner_register(code="wallet", name="W", endpoint_url="https://w.example", actor="s")
        updated = partners.partner_update(code="wallet", actor="staff:ops", endpoint_url="https://w2.example",
                                          active=False)
        assert (updated.endpoint_url, updated.active) == ("https://w2.example", False)


pytestmark_workflow = pytest.mark.django_db(transaction=True)


def _case(reference) -> ClosureCase:
    return ClosureCase.objects.get(reference=reference)


@pytestmark_workflow
def test_every_bound_partner_gets_one_signed_unbind_and_the_results_are_on_the_case(dbos_worker, make_card):
    card = make_card("YKT", balance=500, bindings=["maps-app", "transit-wallet"])
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.CLOSED)

    received = SimPartnerDelivery.objects.order_by("partner")
    assert [(d.partner, d.message_id, d.signature_valid, d.event_type) for d in received] == [
        ("maps-app", f"{case.reference}:unbind:maps-app", True, "card.unbind"),
        ("transit-wallet", f"{case.reference}:unbind:transit-wallet", True, "card.unbind"),
    ]
    assert received[0].body["data"]["binding_ref"] == f"maps-app-{card.id}"
    results = partners.unbind_results(case=_case(case.reference))
    assert [(r["partner"], r["status"], r["attempts"]) for r in results] == [
        ("maps-app", "ACKNOWLEDGED", 1), ("transit-wallet", "ACKNOWLEDGED", 1)]
    assert card.bindings.filter(unbound_at__isnull=True).count() == 0
    card.refresh_from_db()
    assert card.hotlist_version is not None


@pytestmark_workflow
def test_a_binding_to_an_unregistered_partner_goes_to_staff_naming_it(dbos_worker, make_card):
    from closeout.cards import services as cards

    card = make_card("YKT", balance=500)
    cards.binding_add(card=card, partner="ghost-app", external_ref="g-1")
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)

    assert _case(case.reference).attention_reason == "unbind: partner not registered: ghost-app"
    assert UnbindDelivery.objects.get(case__reference=case.reference).status == "FAILED"


@pytestmark_workflow
def test_an_endpoint_pointed_at_a_metadata_address_gets_nothing_and_the_case_goes_to_staff(
        dbos_worker, make_card, settings, monkeypatch):
    from closeout.cards import services as cards
    from closeout.integrations.partners import adapter

    partners.partner_register(code="maps-app", name="Maps", endpoint_url="https://maps.example/hooks/closeout",
                              actor="staff:ops")
    settings.INTEGRATIONS = {**settings.INTEGRATIONS, "partners": "http"}
    # Registered while the name pointed at the partner; its DNS now answers with the metadata service.
    monkeypatch.setattr(adapter, "resolve", lambda host, port: ["169.254.169.254"])
    card = make_card("YKT", balance=500)
    cards.binding_add(card=card, partner="maps-app", external_ref="m-1")
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)

    reason = _case(case.reference).attention_reason
    assert reason.startswith("unbind: not sent to maps-app:") and "metadata address" in reason
    delivery = UnbindDelivery.objects.get(case__reference=case.reference)
    assert (delivery.status, delivery.attempts) == ("FAILED", 1)


@pytestmark_workflow
@pytest.mark.parametrize("mode,answer", [
    ("decline", "answered 422"),
    ("moved", "answered 308: its endpoint moved (redirects are not followed); update its endpoint URL"),
])
def test_a_partner_that_refuses_the_unbind_sends_the_case_to_staff_at_once_naming_it(dbos_worker, make_card, mode,
                                                                                    answer):
    from closeout.integrations.models import SimFault

    SimFault.objects.create(system="partners", operation="maps-app", mode=mode)
    card = make_card("YKT", balance=500, bindings=["maps-app", "transit-wallet"])
    case = services.closure_request(card=card, channel="web", requester="customer:web")

    wait_for(lambda: _case(case.reference).state == states.FAILED)

    assert _case(case.reference).attention_reason == f"unbind: not sent to maps-app: partner maps-app {answer}"
    deliveries = dict(UnbindDelivery.objects.filter(case__reference=case.reference).values_list("partner", "status"))
    assert deliveries == {"maps-app": "FAILED", "transit-wallet": "ACKNOWLEDGED"}
