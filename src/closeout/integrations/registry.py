"""Pick each port's implementation from settings.INTEGRATIONS (default: the built-in simulator)."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

IMPLEMENTATIONS = {
    ("payments", "simulator"): "closeout.integrations.payments.simulator.SimulatedPaymentProvider",
    ("payments", "stripe"): "closeout.integrations.payments.adapter.StripePaymentProvider",
    ("card_system", "simulator"): "closeout.integrations.card_system.simulator.SimulatedCardSystem",
    ("card_system", "http"): "closeout.integrations.card_system.adapter.HttpCardSystem",
    ("smdp", "simulator"): "closeout.integrations.smdp.simulator.SimulatedSmdpPlus",
    ("smdp", "es2plus"): "closeout.integrations.smdp.adapter.Es2PlusClient",
    ("partners", "simulator"): "closeout.integrations.partners.simulator.SimulatedPartnerNotifier",
    ("partners", "http"): "closeout.integrations.partners.adapter.HttpPartnerNotifier",
    ("shipping", "simulator"): "closeout.integrations.shipping.simulator.SimulatedCarrier",
    ("shipping", "http"): "closeout.integrations.shipping.adapter.HttpCarrier",
}


def choice(system: str) -> str:
    import os

    return settings.INTEGRATIONS.get(system) or os.environ.get(f"CLOSEOUT_{system.upper()}", "simulator")


def port(system: str):
    name = choice(system)
    path = IMPLEMENTATIONS.get((system, name), name)
    return import_string(path)()


def simulated(system: str) -> bool:
    return choice(system) == "simulator"
