"""SMS gateway port: `gateway()` returns the implementation chosen by settings.INTEGRATIONS["sms"]."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

IMPLEMENTATIONS = {
    "simulator": "closeout.integrations.sms.simulator.SimulatedSmsGateway",
    "http": "closeout.integrations.sms.adapter.HttpSmsGateway",
}


def gateway():
    choice = getattr(settings, "INTEGRATIONS", {}).get("sms", "simulator")
    return import_string(IMPLEMENTATIONS.get(choice, choice))()
