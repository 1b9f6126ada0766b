"""Settings for the test suite: closeout's own, with a throw-away data dir and the hand-over to the
worker switched off (tests that run a worker switch it on). Set before closeout.settings reads them."""

import os
import tempfile

os.environ.setdefault("CLOSEOUT_DATA_DIR", tempfile.mkdtemp(prefix="closeout-test-"))
os.environ.setdefault("CLOSEOUT_DISPATCH", "0")
os.environ.setdefault("CLOSEOUT_SWEEP_SCHEDULE", "* * * * * *")

from closeout.settings import *  # noqa: E402,F403

if not IS_SQLITE:  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.postgresql_flush"  # noqa: F405
