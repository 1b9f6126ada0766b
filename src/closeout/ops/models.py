from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per worker executor id: the last time it said it was alive.

    A worker whose beat is older than `settings.HEARTBEAT_STALE` (or that stopped) is dead; the
    sweep hands its pending workflows back to the queues and stamps `recovered_at`.
    """

    executor_id = models.CharField(max_length=120, primary_key=True)
    app_version = models.CharField(max_length=80)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    # Which pids `pid` is one of: the kernel's boot and the process's pid namespace. Containers may
    # share a host name (host networking) and never each other's pids; empty: unknown.
    pid_space = models.CharField(max_length=120, blank=True, default="")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    recovered_workflows = models.PositiveIntegerField(default=0)

    def __str__(self):
        return self.executor_id
