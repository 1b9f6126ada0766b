"""Fonts for PDFs with Chinese and English text.

A TrueType CJK font found on the machine (or named by CLOSEOUT_CJK_FONT) is embedded as a subset,
so the PDF renders the same in every viewer. Without one, ReportLab's built-in Adobe CID fonts
(STSong-Light for simplified, MSung-Light for traditional Chinese) are used: they need the
viewer's Asian font pack. Latin text is set in Helvetica either way.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from reportlab.pdfbase import cidfonts, pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

CANDIDATES = (
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"


@dataclass(frozen=True)
class CjkFonts:
    hans: str
    hant: str
    embedded: bool
    source: str


_lock = threading.Lock()
_fonts: CjkFonts | None = None


def _font_path() -> str | None:
    wanted = os.environ.get("CLOSEOUT_CJK_FONT", "")
    if wanted:
        return wanted if Path(wanted).is_file() else None
    return next((p for p in CANDIDATES if Path(p).is_file()), None)


def cjk_fonts() -> CjkFonts:
    """Register the CJK fonts once per process and say which ones are in use."""
    global _fonts
    with _lock:
        if _fonts is None:
            path = _font_path()
            if path:
                font = TTFont("CloseoutCJK", path, subfontIndex=0) if path.endswith(".ttc") else TTFont(
                    "CloseoutCJK", path)
                pdfmetrics.registerFont(font)
                _fonts = CjkFonts("CloseoutCJK", "CloseoutCJK", True, path)
            else:
                pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
                # ReportLab's table pairs MSung-Light (Adobe-CNS1) with the simplified GB CMap,
                # under which a viewer draws traditional text as the wrong characters.
                cidfonts.defaultUnicodeEncodings["MSung-Light"] = ("cht", "UniCNS-UCS2-H")
                pdfmetrics.registerFont(UnicodeCIDFont("MSung-Light"))
                _fonts = CjkFonts("STSong-Light", "MSung-Light", False, "reportlab-cid")
        return _fonts


def font_for(language: str, *, other: str) -> str:
    """The CJK font of a Chinese page (traditional or simplified), `other` for any other language."""
    if language == "zh-hant":
        return cjk_fonts().hant
    return cjk_fonts().hans if language == "zh-hans" else other


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return code >= 0x2E80 and not (0xFE00 <= code <= 0xFE0F)


def runs(text: str) -> list[tuple[bool, str]]:
    """Split text into (is_cjk, run) pieces so each is set in a font that has its glyphs."""
    out: list[tuple[bool, str]] = []
    for ch in text:
        cjk = is_cjk(ch)
        if out and out[-1][0] == cjk:
            out[-1] = (cjk, out[-1][1] + ch)
        else:
            out.append((cjk, ch))
    return out
