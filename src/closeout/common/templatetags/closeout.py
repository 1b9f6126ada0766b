from decimal import Decimal

from babel.numbers import format_currency
from django import template
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from closeout.common.languages import font_stack, language_tag
from closeout.common.money import Money, exponent

register = template.Library()

BABEL_LOCALES = {"zh-hans": "zh_Hans_CN", "zh-hant": "zh_Hant_HK", "en": "en_HK"}


@register.filter
def money(minor, currency):
    """Format integer minor units for the active language, e.g. 'HK$12.30' or 'HK$12.30'."""
    if minor is None:
        return ""
    value = Money(int(minor), currency)
    locale = BABEL_LOCALES.get(translation.get_language() or "en", "en_HK")
    # Decimal built from the integer digits: exact, never a float.
    exp = exponent(currency)
    units, frac = divmod(abs(value.minor), 10**exp) if exp else (abs(value.minor), 0)
    text = f"{'-' if value.minor < 0 else ''}{units}" + (f".{frac:0{exp}d}" if exp else "")
    return format_currency(Decimal(text), currency, locale=locale)


def _chinese() -> bool:
    return (translation.get_language() or "").startswith("zh")


@register.simple_tag
def colon() -> str:
    """The colon after a label: full-width in Chinese ("狀態：已提交"), a colon and a space in English."""
    return "：" if _chinese() else ": "


@register.simple_tag
def paren_open() -> str:
    """An aside's opening bracket: full-width in Chinese ("HK$10.00（銀行戶口）"), " (" in English."""
    return "（" if _chinese() else " ("


@register.simple_tag
def paren_close() -> str:
    return "）" if _chinese() else ")"


@register.simple_tag
def semicolon() -> str:
    """Between two clauses of an aside: full-width in Chinese ("剩餘 6 / 30 天；剩餘數據 17.1 GB")."""
    return "；" if _chinese() else "; "


@register.simple_tag
def sentence_space() -> str:
    """What goes between two sentences: nothing after a Chinese full stop, a space in English."""
    return "" if _chinese() else " "


register.filter("language_tag", language_tag)


@register.filter(name="font_stack")
def font_stack_css(code: str) -> str:
    """The font-family list for a style attribute (its quotes are the CSS's, not text)."""
    return mark_safe(font_stack(code))  # noqa: S308 - built from constants only


@register.filter(is_safe=True)
def nowrap(value, only: str = "") -> str:
    """Keep a date, a time or a number on one line: a Chinese line may break between any two
    characters, even inside "2026年12月10日" or "09:00–21:00". `nowrap:"zh"` keeps a phrase whole on a
    Chinese page only ("（香港時間）"): in English it breaks at its spaces, as it should on a phone."""
    return format_html('<span class="{}">{}</span>', "nowrap-zh" if only == "zh" else "nowrap", value)
