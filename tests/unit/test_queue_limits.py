"""Queue limits: one queue per external system, limits an operator can set per worker and overall."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from closeout.closures.dispatch import (
    DEFAULT_QUEUE_LIMITS,
    POLL_FACTOR,
    QUEUE_FOR_ACTION,
    BadQueueLimits,
    QueueLimit,
    parse_queue_limits,
    polling_interval,
)

# The external system each action calls; "internal" calls none.
SYSTEM_OF_ACTION = {
    "verify": "internal", "settle": "internal", "bulk_settle": "internal",
    "refund": "payments", "refund_status": "payments", "bulk_refund": "payments",
    "deactivate": "card_system", "deactivate_number": "card_system", "bulk_block": "card_system",
    "release_profile": "smdp", "unbind": "partners", "return_label": "shipping",
}


def test_no_queue_mixes_the_calls_of_two_systems_or_single_cases_with_bulk_files():
    assert set(QUEUE_FOR_ACTION) == set(SYSTEM_OF_ACTION)
    by_queue: dict[str, set] = {}
    for action, queue in QUEUE_FOR_ACTION.items():
        by_queue.setdefault(queue, set()).add((SYSTEM_OF_ACTION[action], action.startswith("bulk_")))
        assert queue in DEFAULT_QUEUE_LIMITS, f"{action} goes to {queue}, which no worker listens to"
    assert all(len(kinds) == 1 for kinds in by_queue.values()), by_queue


def test_an_operator_sets_limits_per_worker_and_over_all_workers():
    assert parse_queue_limits(" payments=2/6, smdp=1 ,") == {"payments": QueueLimit(2, 6), "smdp": QueueLimit(1)}
    assert parse_queue_limits("") == {}


@pytest.mark.parametrize("text, names", [
    ("paymnets=2", "no queue 'paymnets'"),
    ("payments", "payments=PER_WORKER"),
    ("payments=0", "above 0"),
    ("payments=2/x", "above 0"),
    ("payments=-1", "above 0"),
    ("payments=٣", "above 0"),
])
def test_a_bad_limit_is_refused_naming_the_entry(text, names):
    with pytest.raises(BadQueueLimits) as refused:
        parse_queue_limits(text)
    assert repr(text.split(",")[0]) in str(refused.value) and names in str(refused.value)


def test_a_worker_with_a_bad_limit_does_not_start_and_says_why(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}  # SQLite in tmp_path: nothing left behind
    env.update(CLOSEOUT_QUEUE_LIMITS="payments=4,card_sytem=2", CLOSEOUT_DATA_DIR=str(tmp_path),
               CLOSEOUT_EXECUTOR_ID="limits-test")
    subprocess.run([sys.executable, "-m", "closeout.cli", "migrate"], env=env, capture_output=True, timeout=120,
                   check=True)
    done = subprocess.run([sys.executable, "-m", "closeout.cli", "worker"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "'card_sytem=2'" in done.stderr and "not starting" in done.stderr


def test_queues_with_rare_or_long_work_are_polled_less_often_and_the_customers_first_steps_at_once(settings):
    settings.DBOS_POLLING_INTERVAL = 0.2
    assert set(POLL_FACTOR) <= set(DEFAULT_QUEUE_LIMITS)  # a misspelt queue would silently poll at 1x
    assert [polling_interval(q) for q in ("internal", "payments", "card_system")] == [0.2, 0.2, 0.2]
    assert polling_interval("smdp") == polling_interval("partners") == 0.5
    assert {polling_interval(q) for q in ("bulk", "bulk_payments", "bulk_card_system")} == {1.0}
