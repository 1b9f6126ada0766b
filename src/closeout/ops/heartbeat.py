"""The worker's heartbeat thread."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections

from closeout.ops import services

log = logging.getLogger(__name__)


class Heartbeat:
    """Beat into `WorkerHeartbeat` every `interval` seconds until stopped."""

    def __init__(self, *, executor_id: str, interval: float):
        self.executor_id = executor_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="closeout-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Claim the executor id and start beating.

        :raises services.ExecutorIdInUse: when another live worker beats under the same id.
        """
        close_old_connections()
        try:
            services.heartbeat_claim(executor_id=self.executor_id)
        finally:
            close_old_connections()
        self._thread.start()
        return self

    def beat(self) -> None:
        """Beat at once (the worker has launched: from now on it counts as running)."""
        try:
            close_old_connections()
            services.heartbeat_beat(executor_id=self.executor_id)
        except Exception:  # noqa: BLE001 - a missed beat is retried; the worker keeps working
            log.warning("heartbeat failed", exc_info=True)
        finally:
            close_old_connections()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self, *, clean: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        if clean:
            try:
                # This thread's connection has sat idle since the start: the server may have dropped
                # it long ago (a failover, a restart), and the stop would then look like a crash.
                close_old_connections()
                services.heartbeat_stop(executor_id=self.executor_id)
            except Exception:  # noqa: BLE001 - the stale beat tells the same story a little later
                log.warning("could not record the worker stop", exc_info=True)
            finally:
                close_old_connections()
