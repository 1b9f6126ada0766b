"""The simulated outside world's clock: settle due refunds, let simulated eSIM owners delete
their profiles, and deliver what the simulators send to closeout. The sweep calls `tick()`."""

from __future__ import annotations

import logging

from closeout.integrations import registry

log = logging.getLogger(__name__)


def tick() -> int:
    """Advance every simulator that is in use; return how many messages were delivered."""
    from closeout.integrations.outbox import outbox_deliver

    delivered = 0
    if registry.simulated("payments"):
        from closeout.integrations.payments.simulator import settle_due

        settle_due()
        delivered += outbox_deliver(system="payments")
    if registry.simulated("smdp"):
        from closeout.integrations.smdp.simulator import devices_due

        devices_due()
        delivered += outbox_deliver(system="smdp")
    return delivered
