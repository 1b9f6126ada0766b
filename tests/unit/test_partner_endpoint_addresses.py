"""The unbind webhook goes to the address its endpoint's host name resolves to at delivery, checked
then: a name registered pointing at a partner and later pointed at a cloud metadata service
(169.254.169.254 answers with the machine's credentials) gets nothing, and the connection is made
to the checked address, not to whatever the name resolves to a moment later."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from closeout.integrations.errors import PermanentError, TransientError
from closeout.integrations.partners.adapter import HttpPartnerNotifier
from closeout.integrations.partners.port import Delivery


def _delivery(url: str) -> Delivery:
    return Delivery(partner="maps-app", endpoint_url=url, message_id="CL-2026-000001:unbind:maps-app",
                    body='{"type":"card.unbind"}', secrets=("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",))


@pytest.fixture
def partner_server():
    """A partner endpoint on loopback that records the Host header of what it receives."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def _never_connect(request):
    raise AssertionError(f"connected to {request.url}")


def test_a_host_name_is_posted_to_the_address_it_was_checked_at(partner_server):
    port, seen = partner_server
    asked = []

    def resolver(host, port_):
        asked.append((host, port_))
        return ["127.0.0.1"]

    result = HttpPartnerNotifier(resolver=resolver).send(_delivery(f"http://partner.example:{port}/hook"))

    assert result.acknowledged and result.status_code == 204
    assert asked == [("partner.example", port)]
    assert seen == [f"partner.example:{port}"]  # the partner still sees its own name


@pytest.mark.parametrize("addresses", [["169.254.169.254"], ["10.1.2.3", "169.254.169.254"], ["fe80::1%eth0"],
                                       ["::ffff:169.254.169.254"], ["fd00:ec2::254"]])
def test_a_name_that_resolves_to_a_metadata_address_gets_nothing(addresses):
    notifier = HttpPartnerNotifier(transport=httpx.MockTransport(_never_connect),
                                   resolver=lambda host, port: addresses)

    with pytest.raises(PermanentError, match="resolves to a link-local or cloud metadata address"):
        notifier.send(_delivery("https://partner.example/hook"))


def test_an_address_written_in_another_form_is_checked_as_the_address_it_is():
    notifier = HttpPartnerNotifier(transport=httpx.MockTransport(_never_connect),
                                   resolver=lambda host, port: ["169.254.169.254"] if host == "2852039166" else [])

    with pytest.raises(PermanentError):
        notifier.send(_delivery("http://2852039166/latest/meta-data/"))


def test_a_name_that_does_not_resolve_is_tried_again_later():
    def resolver(host, port):
        raise OSError("Name or service not known")

    with pytest.raises(TransientError, match="does not resolve"):
        HttpPartnerNotifier(transport=httpx.MockTransport(_never_connect), resolver=resolver).send(
            _delivery("https://partner.example/hook"))


def test_over_tls_the_name_is_kept_for_the_certificate_check():
    sent = []

    def answer(request):
        sent.append((str(request.url), request.headers["Host"], request.extensions.get("sni_hostname")))
        return httpx.Response(200)

    HttpPartnerNotifier(transport=httpx.MockTransport(answer), resolver=lambda host, port: ["2001:db8::7"]).send(
        _delivery("https://partner.example:8443/hook?v=1"))

    assert sent == [("https://[2001:db8::7]:8443/hook?v=1", "partner.example:8443", "partner.example")]
