"""A refund destination is shown by its last four characters, a bank account and an e-wallet alike,
never whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from closeout.identity.documents import mask_account


def test_a_bank_account_and_an_e_wallet_show_their_last_four():
    assert mask_account("123456789012") == "••••9012"
    assert mask_account("98765432") == "••••5432"
    assert mask_account("chan.taiman@wallet") == "••••llet"


@given(st.text(alphabet="0123456789abcdef@.", min_size=3, max_size=64))
def test_no_id_is_shown_whole(wallet):
    shown = mask_account(wallet).removeprefix("••••")
    assert len(shown) <= 4 and len(shown) < len(wallet) and wallet.endswith(shown)
