"""No page or notice shows an untranslated string: every string the portal, the shared base
template and the notices use is in the catalogs, translated in zh_Hans and zh_Hant, with the
same placeholders."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

from closeout.portal import catalogs

APPS = list(catalogs.SOURCES)
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def _key(msgid):
    return msgid if isinstance(msgid, str) else tuple(msgid)


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("locale", ["zh_Hans", "zh_Hant", "en"])
def test_every_string_in_the_code_is_in_the_catalog(app, locale):
    used = {(_key(msgid), context) for msgid, context in catalogs.extract(app)}
    known = {(_key(m.id), m.context) for m in catalogs.read(app, locale) if m.id}
    missing = used - known
    assert not missing, f"run `python -m closeout.portal.catalogs` and translate: {sorted(map(str, missing))}"
    assert len(used) > 10  # the extraction found the strings (it fails quietly when templatize breaks)


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("locale", ["zh_Hans", "zh_Hant"])
def test_every_string_is_translated_with_the_same_placeholders(app, locale):
    problems = []
    for message in catalogs.read(app, locale):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if not all(s and s.strip() for s in strings):
            problems.append(("untranslated", ids[0]))
            continue
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        if any(set(PLACEHOLDER.findall(s)) != wanted for s in strings):
            problems.append(("placeholders", ids[0]))
        if message.fuzzy:
            problems.append(("fuzzy", ids[0]))
    assert problems == []


def test_the_two_chinese_catalogs_use_the_glossary_terms():
    hans = {m.id: m.string for m in catalogs.read("portal", "zh_Hans") if m.id}
    hant = {m.id: m.string for m in catalogs.read("portal", "zh_Hant") if m.id}
    assert hans["Closed"] == "已注销" and hant["Closed"] == "已註銷"
    assert hans["Deposit"] == "押金" and hant["Deposit"] == "按金"
    assert hans["Your refund"] == "退款预估" and hant["Your refund"] == "退款預算"
    assert hans["Receipt"] == "回执" and hant["Receipt"] == "收據"


@pytest.mark.parametrize(("language", "expected"), [("zh-hans", "退款方式"), ("zh-hant", "退款方式"),
                                                     ("en", "Refund destination")])
def test_the_compiled_catalogs_are_in_effect(language, expected):
    with translation.override(language):
        assert translation.gettext("Refund destination") == expected
        assert translation.gettext("Close your card") != "Close your card" or language == "en"


def test_the_console_names_an_approval_and_an_email_the_same_way_everywhere():
    """The approver's buttons say 批准 and the case page 电子邮件: a timeline note said 批核, and the
    search field 电邮 (Hong Kong usage), in the other script's words."""
    hans = [m.string for m in catalogs.read("console", "zh_Hans") if m.id]
    hant = [m.string for m in catalogs.read("console", "zh_Hant") if m.id]
    assert not [s for s in hans if "电邮" in str(s)]
    assert not [s for s in hant if "批核" in str(s)]
