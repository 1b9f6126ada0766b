"""Compile gettext catalogs (.po → .mo) with Babel, so no system gettext is needed."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def compile_catalogs(root: Path = PACKAGE_DIR) -> int:
    """Compile every catalog under the package: the project's and each app's `locale/`."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    compiled = 0
    for po_path in root.glob("**/locale/*/LC_MESSAGES/*.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as handle:
            catalog = read_po(handle)
        with mo_path.open("wb") as handle:
            write_mo(handle, catalog)
        compiled += 1
    return compiled
