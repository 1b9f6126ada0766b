"""Language codes as the outside world spells them."""

from __future__ import annotations

from django.utils import translation


def language_tag(code: str) -> str:
    """Return the BCP 47 tag of a Django language code ("zh-hant" is "zh-Hant").

    Screen readers pick their voice, browsers and mail readers their Chinese font, by the script
    written as BCP 47 spells it; Django's codes (in addresses, cookies, catalogs) stay lowercase.
    """
    return translation.to_locale(code).replace("_", "-")
