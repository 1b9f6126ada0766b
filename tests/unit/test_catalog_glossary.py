"""Each idea has one name per language (GLOSSARY.md in the design notes): a customer who reads 客務中心
on the booking page and 分行 in the confirmation email wonders whether they are two places. The
words below are the usual other names of glossary terms; none may appear in a catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "closeout"
CATALOGS = sorted(PACKAGE.glob("*/locale/zh_*/LC_MESSAGES/django.po"))
# other name -> the glossary's name, per language
NOT_OURS = {
    "zh_Hans": {"分行": "营业厅", "银行帐户": "银行账户", "预估退款": "退款预估"},
    "zh_Hant": {"分行": "客務中心", "櫃檯": "櫃位", "銀行帳戶": "銀行戶口", "押金": "按金", "回執": "收據"},
}


def strays(text: str, locale: str) -> list[str]:
    return [f"{word} (say {ours})" for word, ours in NOT_OURS[locale].items() if word in text]


@pytest.mark.parametrize("path", CATALOGS, ids=lambda path: f"{path.parts[-5]}-{path.parts[-3]}")
def test_each_catalog_uses_the_glossary_names(path):
    locale = path.parts[-3]
    with path.open("rb") as handle:
        catalog = read_po(handle)
    found = {}
    for message in catalog:
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        words = [word for text in strings for word in strays(text or "", locale)]
        if message.id and words:
            found[message.id if isinstance(message.id, str) else message.id[0]] = words
    assert found == {}


def test_the_check_finds_an_other_name():
    assert strays("請到我們的分行櫃檯辦理", "zh_Hant") == ["分行 (say 客務中心)", "櫃檯 (say 櫃位)"]
    assert strays("请到营业厅柜台办理", "zh_Hans") == []
