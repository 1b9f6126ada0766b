"""The WSGI application gunicorn serves, under `closeout serve` or started on `closeout.wsgi` directly.

Either way it starts only with the PII key the database's personal data is encrypted under, as the
`closeout` commands do: a data dir whose pii_key file was lost is refused with one line, not given a
new key that decrypts nothing (docs/reliability.md, "The PII key").
"""

import logging
import os

from gunicorn.errors import AppImportError

log = logging.getLogger(__name__)


class WebStartRefused(AppImportError, RuntimeError):
    """The application must not serve with this PII key.

    An AppImportError makes a gunicorn worker print the message alone and the master stop with it
    (rather than boot workers in a loop); a RuntimeError is what gunicorn prints on one line when
    the application loads in the master (`--preload`).
    """


def _setup() -> None:
    """Load the settings and apps without keeping a new PII key yet: `_pii_key_check` keeps one
    only once it has seen that the database holds no personal data under a lost one."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeout.settings")
    os.environ["CLOSEOUT_PII_KEY_UNSAVED"] = "1"
    try:
        django.setup(set_prefix=False)
    finally:
        os.environ.pop("CLOSEOUT_PII_KEY_UNSAVED", None)


def _pii_key_check() -> None:
    """Refuse to serve with a missing or wrong PII key.

    A database that cannot be reached does not stop a process that has its key (a worker gunicorn
    starts again during an outage must not halt the server); a process that would have to make a
    new key cannot tell whether one is allowed, so it refuses.

    :raises WebStartRefused: with the line `closeout serve` would print.
    """
    from django.conf import settings
    from django.db import DatabaseError, connections

    from closeout.common.text import first_line
    from closeout.identity.services import UnableToUsePiiKey, pii_key_check

    try:
        pii_key_check()
    except UnableToUsePiiKey as exc:
        raise WebStartRefused(f"closeout: {exc}") from None
    except DatabaseError as exc:
        if getattr(settings, "PII_KEY_UNSAVED_PATH", None) is not None:
            raise WebStartRefused(f"closeout: cannot reach the database to check the PII key, and {settings.DATA_DIR} "
                                  f"has no pii_key file; no new key was made: {first_line(exc)}") from None
        log.warning("the PII key was not checked: the database did not answer (%s)", type(exc).__name__)
    finally:
        connections.close_all()  # not handed to the processes gunicorn forks from this one (`--preload`)


def _application():
    from django.core.handlers.wsgi import WSGIHandler

    _setup()
    _pii_key_check()
    return WSGIHandler()


application = _application()
