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


class RefusalCounted(models.Model):
    """A permanent refusal a workflow step counted in `closeout_adapter_errors_total`.

    DBOS runs a step again when its worker died after the step's work and before DBOS recorded the
    step; the system, asked again with the same idempotency key, refuses again. With
    PROMETHEUS_MULTIPROC_DIR the dead worker's count outlives it, so the step's second run must not
    count: this row, unique per workflow step and call, says it was counted.
    """

    workflow_id = models.CharField(max_length=200)
    step_id = models.IntegerField()
    system = models.CharField(max_length=40)
    call = models.CharField(max_length=80)
    counted_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow_id", "step_id", "system", "call"],
                                               name="refusal_counted_once_per_step")]
