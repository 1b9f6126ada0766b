"""The case page names every notice the customer may be sent, in the staff member's language."""

from __future__ import annotations

import pytest
from django.utils import translation

from closeout.console.selectors import NOTICE_KINDS
from closeout.notifications.services import TEMPLATES


def test_every_notice_template_has_a_name_on_the_case_page():
    assert set(TEMPLATES) - set(NOTICE_KINDS) == set()


@pytest.mark.parametrize("language", ["zh-hans", "zh-hant"])
def test_every_notice_name_is_translated(language):
    with translation.override("en"):
        english = {template: str(label) for template, label in NOTICE_KINDS.items()}
    with translation.override(language):
        untranslated = [template for template, label in NOTICE_KINDS.items() if str(label) == english[template]]
    assert untranslated == []
