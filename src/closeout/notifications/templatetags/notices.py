from datetime import date, datetime

from django import template

register = template.Library()


@register.filter
def as_date(value):
    """Turn an ISO date string kept in a notice's context back into a date for |date."""
    if isinstance(value, date) or not value:
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


@register.filter
def as_datetime(value):
    """Turn an ISO datetime string kept in a notice's context back into an aware datetime."""
    if isinstance(value, datetime) or not value:
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
