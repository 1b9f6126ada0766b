"""Pick each port's implementation from settings.INTEGRATIONS."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

IMPLEMENTATIONS = {
    ("payments", "simulator"): "closeout.integrations.payments.simulator.SimulatedPaymentProvider",
    ("card_system", "simulator"): "closeout.integrations.card_system.simulator.SimulatedCardSystem",
}


def port(system: str):
    choice = settings.INTEGRATIONS.get(system, "simulator")
    path = IMPLEMENTATIONS.get((system, choice), choice)
    return import_string(path)()
