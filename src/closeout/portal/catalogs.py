"""Extract the translatable strings of the apps the customer sees and keep their gettext catalogs
up to date, without system gettext: Django's `templatize` turns templates into Python that Babel
can read. `python -m closeout.portal.catalogs` updates the .po files; the catalog test uses
`extract()` to prove that every string on a page has a translation.

The portal catalog also carries the strings of the shared `templates/` (base page, 404 and 500)
and of the PDF copy of a case the portal hands out (`aftercare/export_pdf.py`).
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_python
from babel.messages.pofile import read_po, write_po

PACKAGE = Path(__file__).resolve().parent.parent
SOURCES = {
    "portal": [PACKAGE / "portal", PACKAGE / "templates", PACKAGE / "aftercare" / "export_pdf.py"],
    "notifications": [PACKAGE / "notifications"],
    "console": [PACKAGE / "console"],
    "appointments": [PACKAGE / "appointments"],
    "certificates": [PACKAGE / "certificates"],
}
LOCALES = ("zh_Hans", "zh_Hant", "en")
KEYWORDS = {
    "_": None, "gettext": None, "gettext_lazy": None, "gettext_noop": None,
    "ngettext": (1, 2), "ngettext_lazy": (1, 2),
    "pgettext": ((1, "c"), 2), "pgettext_lazy": ((1, "c"), 2),
    "npgettext": ((1, "c"), 2, 3), "npgettext_lazy": ((1, "c"), 2, 3),
}


def _files(paths):
    for path in paths:
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*")):
            if file.suffix in (".py", ".html", ".txt") and "migrations" not in file.parts and file.name != "catalogs.py":
                yield file


def _python_source(file: Path) -> str:
    from django.utils.translation.template import templatize

    text = file.read_text(encoding="utf-8")
    return text if file.suffix == ".py" else templatize(text, origin=str(file))


def extract(app: str) -> dict[tuple[str | tuple[str, str], str | None], list[str]]:
    """Return {(msgid or (singular, plural), context): [locations]} for one app: the same words
    in two contexts ("Email" as a contact, "Email" as a channel) are two messages."""
    found: dict = {}
    for file in _files(SOURCES[app]):
        source = io.BytesIO(_python_source(file).encode("utf-8"))
        for lineno, funcname, messages, _comments in extract_python(source, KEYWORDS.keys(), [], {}):
            spec = KEYWORDS.get(funcname)
            if isinstance(messages, str):
                messages = (messages,)
            context = None
            if funcname.startswith(("pgettext", "npgettext")):
                context, messages = messages[0], messages[1:]
            if not messages or not messages[0]:
                continue
            msgid = messages[0] if len(messages) == 1 or spec is None else (messages[0], messages[1])
            found.setdefault((msgid, context), []).append(f"{file.relative_to(PACKAGE)}:{lineno}")
    return found


def po_path(app: str, locale: str) -> Path:
    return PACKAGE / app / "locale" / locale / "LC_MESSAGES" / "django.po"


def read(app: str, locale: str) -> Catalog:
    with po_path(app, locale).open("rb") as handle:
        return read_po(handle, locale=locale)


def update(app: str) -> None:
    """Add new strings to each locale's catalog, keep existing translations, drop unused ones."""
    template = Catalog(project="closeout", fuzzy=False)
    for (msgid, context), locations in extract(app).items():
        template.add(msgid, locations=[(loc.rsplit(":", 1)[0], int(loc.rsplit(":", 1)[1])) for loc in locations],
                     context=context)
    for locale in LOCALES:
        path = po_path(app, locale)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = read(app, locale) if path.exists() else Catalog(locale=locale, project="closeout", fuzzy=False)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as handle:
            write_po(handle, catalog, width=110, omit_header=False, include_previous=False)


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeout.settings")
    django.setup()
    for name in SOURCES:
        update(name)
