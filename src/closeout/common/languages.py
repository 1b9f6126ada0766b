"""Language codes as the outside world spells them."""

from __future__ import annotations

from django.utils import translation


def language_tag(code: str) -> str:
    """Return the BCP 47 tag of a Django language code ("zh-hant" is "zh-Hant").

    Screen readers pick their voice, browsers and mail readers their Chinese font, by the script
    written as BCP 47 spells it; Django's codes (in addresses, cookies, catalogs) stay lowercase.
    """
    return translation.to_locale(code).replace("_", "-")


# Mail readers have no web fonts: the first installed face of the reader's script wins. A
# traditional Chinese message set in a simplified face shows mainland glyph shapes (and falls back
# character by character where the face lacks a traditional one).
_FONTS = {
    "zh-hans": "'PingFang SC','Microsoft YaHei','Noto Sans CJK SC',",
    "zh-hant": "'PingFang HK','PingFang TC','Microsoft JhengHei','Noto Sans CJK TC',",
}


def font_stack(code: str) -> str:
    """Return a CSS font-family list for text in language `code` (a Django language code)."""
    return f"system-ui,{_FONTS.get(code, '')}sans-serif"
