"""The customer is addressed one way per language, everywhere: 您 in simplified Chinese (mainland
usage), 你 in traditional Chinese (Hong Kong usage, as the glossary's zh-hant column follows). A
receipt that says 你 after a portal page that said 您 reads as two companies writing. The console's
staff text follows the same rule, so one check covers every catalog (docs/portal.md, Translations)."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "closeout"
CATALOGS = sorted(PACKAGE.glob("*/locale/zh_*/LC_MESSAGES/django.po"))
# The form each language uses for "you", and the one it must not.
REGISTER = {"zh_Hans": ("您", "你"), "zh_Hant": ("你", "您")}
# Words that hold the other character without addressing anyone.
NOT_ADDRESS = ("迷你",)


def other_form(text: str, locale: str) -> bool:
    for word in NOT_ADDRESS:
        text = text.replace(word, "")
    return REGISTER[locale][1] in text


def test_every_chinese_catalog_is_checked():
    apps = {path.parts[-5] for path in CATALOGS}
    assert {"portal", "notifications", "console", "certificates", "appointments"} <= apps
    assert {path.parts[-3] for path in CATALOGS} == set(REGISTER)


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: f"{path.parts[-5]}-{path.parts[-3]}")
def test_each_catalog_addresses_the_reader_in_its_languages_one_register(path):
    locale = path.parts[-3]
    with path.open("rb") as handle:
        catalog = read_po(handle)
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if any(other_form(text or "", locale) for text in strings):
            wrong.append(message.id if isinstance(message.id, str) else message.id[0])
    assert wrong == [], f"{locale} says {REGISTER[locale][0]}, not {REGISTER[locale][1]}: {wrong}"


@pytest.mark.parametrize(("text", "locale", "wrong"), [
    ("您的卡片已註銷。", "zh_Hant", True), ("你的卡片已註銷。", "zh_Hant", False),
    ("你的卡片已注销。", "zh_Hans", True), ("您的卡片已注销。", "zh_Hans", False),
    ("迷你 SIM 卡", "zh_Hans", False),
])
def test_the_check_tells_the_two_forms_apart(text, locale, wrong):
    assert other_form(text, locale) is wrong
