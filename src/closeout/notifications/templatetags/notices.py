from datetime import date

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
