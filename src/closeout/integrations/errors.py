class AdapterError(Exception):
    """Base of errors raised by external-system adapters."""


class TransientError(AdapterError):
    """Timeout, connection failure or 5xx: safe to retry with the same idempotency key."""


class PermanentError(AdapterError):
    """The external system refused the request; retrying will not help."""
