"""Translated words filled in as the catalogs write mixed text: Latin letters and digits set apart
from Chinese characters by a space, nothing added in English or between Chinese words."""

from __future__ import annotations

from closeout.common.text import fill


def test_a_latin_word_beside_chinese_characters_is_set_apart():
    assert fill("經%(channel)s申請", {"channel": "合作夥伴 API"}) == "經合作夥伴 API 申請"
    assert fill("透過%(channel)s提出", {"channel": "eSIM"}) == "透過 eSIM 提出"


def test_chinese_values_english_words_and_punctuation_are_filled_in_as_they_are():
    assert fill("經%(channel)s申請", {"channel": "網上自助服務"}) == "經網上自助服務申請"
    assert fill("requested via %(channel)s", {"channel": "Partner API"}) == "requested via Partner API"
    assert fill("頁面時間均為%(zone)s（%(offset)s）", {"zone": "香港時間", "offset": "UTC+08:00"}) == \
        "頁面時間均為香港時間（UTC+08:00）"
    assert fill("%(n)s%% 完成", {"n": 50}) == "50% 完成"
