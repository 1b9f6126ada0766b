"""Portal forms: parse and check input, with messages in the customer's language."""

from __future__ import annotations

import re

from django import forms
from django.core import validators
from django.utils.translation import gettext_lazy as _
from stdnum import iban

from closeout.closures.services import BANK_CODE
from closeout.identity import documents
from closeout.portal.labels import DESTINATION_LABELS

CARD_NUMBER_ATTRS = {
    "inputmode": "numeric", "autocomplete": "off", "spellcheck": "false", "data-luhn": "1",
    "aria-describedby": "card-number-hint card-number-live",
}
BAD_CARD = _("This card number is not valid. Please check the digits.")


REQUIRED = _("Please fill in this field.")
TOO_LONG = _("This is too long: at most %(limit_value)d characters.")


class PortalForm(forms.Form):
    """A form whose empty and over-long fields get a plain message in the customer's language
    (Django's own speak of "values" and "variables")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        default_required = str(forms.Field.default_error_messages["required"])
        for field in self.fields.values():
            if str(field.error_messages.get("required", "")) == default_required:
                field.error_messages["required"] = REQUIRED
            field.validators = [
                validators.MaxLengthValidator(v.limit_value, message=TOO_LONG)
                if isinstance(v, validators.MaxLengthValidator) else v for v in field.validators]

    def full_clean(self):
        super().full_clean()
        refused = [name for name in self.fields if name in self._errors]
        for name in refused:
            self.point_at(name, f"{self[name].auto_id}_error", focus=name == refused[0])

    def point_at(self, name: str, message_id: str, *, focus: bool = True) -> None:
        """Mark a field as refused: its input reads out the message with id `message_id` after its
        label and, with `focus`, has the focus when the page opens (a screen reader starts there, a
        phone shows it). Also for a refusal found after the form, such as a wrong one-time code."""
        bound, widget = self[name], self.fields[name].widget
        widget.attrs["aria-invalid"] = "true"
        if not bound.use_fieldset:  # a group of radio buttons is described by its fieldset
            described = widget.attrs.get("aria-describedby", "").split()
            widget.attrs["aria-describedby"] = " ".join(dict.fromkeys([*described, message_id]))
        if focus:
            widget.attrs["autofocus"] = True

    def error_summary(self) -> list[dict]:
        """The refused fields in page order, each with its first message and the id of the input it
        leads to, for the list at the top of the page. A tick box goes by its message alone: its
        label is a whole paragraph."""
        summary = []
        for name, field in self.fields.items():
            if name not in self.errors:
                continue
            bound = self[name]
            label = "" if isinstance(field.widget, forms.CheckboxInput) else bound.label
            summary.append({"anchor": bound.id_for_label or f"{bound.auto_id}_0", "label": label,
                            "message": self.errors[name][0]})
        return summary


def _clean_card_number(value: str) -> str:
    try:
        return documents.normalize_card_number(value)
    except documents.InvalidDocument:
        raise forms.ValidationError(BAD_CARD, code="card_number")


class CardNumberField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(label=_("Card number"), max_length=32,
                         widget=forms.TextInput(attrs=dict(CARD_NUMBER_ATTRS)), **kwargs)


class SignInForm(PortalForm):
    card_number = CardNumberField()
    id_type = forms.ChoiceField(label=_("ID document"), choices=[
        ("cn_resident_id", _("Mainland resident ID")), ("hkid", _("HKID")), ("passport", _("Passport"))])
    id_number = forms.CharField(label=_("ID document number"), max_length=40, widget=forms.TextInput(attrs={
        "autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}))
    channel = forms.ChoiceField(label=_("Send the one-time code by"), widget=forms.RadioSelect, initial="sms",
                                choices=[("sms", _("SMS to the phone number on file")),
                                         ("email", _("Email to the address on file"))])

    def clean_card_number(self):
        return _clean_card_number(self.cleaned_data["card_number"])

    def clean(self):
        data = super().clean()
        if "id_type" in data and "id_number" in data:
            try:
                data["id_number"] = documents.normalize_id_number(data["id_type"], data["id_number"])
            except documents.InvalidDocument:
                self.add_error("id_number", _("This ID document number is not valid."))
        return data


class CodeForm(PortalForm):
    code = forms.CharField(label=_("One-time code"), max_length=12, widget=forms.TextInput(attrs={
        "inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9 ]*", "aria-describedby": "code-hint"}))

    def clean_code(self):
        code = re.sub(r"\s", "", documents.half_width(self.cleaned_data["code"]))
        if not re.fullmatch(r"[0-9]{6}", code):
            raise forms.ValidationError(_("The code has 6 digits."))
        return code


class CheckForm(PortalForm):
    card_number = CardNumberField()

    def clean_card_number(self):
        return _clean_card_number(self.cleaned_data["card_number"])


WALLETS = [("alipayhk", _("AlipayHK")), ("wechatpay", _("WeChat Pay")), ("payme", _("PayMe")), ("other", _("Other"))]


class ConfirmForm(PortalForm):
    destination = forms.ChoiceField(label=_("Refund destination"), widget=forms.RadioSelect, initial="original",
                                    choices=[(k, v) for k, v in DESTINATION_LABELS.items()])
    bank_code = forms.CharField(label=_("Bank code (3 digits) or SWIFT code"), max_length=11, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                              "autocapitalize": "characters"}))
    account_number = forms.CharField(label=_("Account number"), max_length=42, required=False,
                                     widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                                   "inputmode": "text", "autocapitalize": "characters"}))
    wallet_provider = forms.ChoiceField(label=_("E-wallet"), choices=WALLETS, required=False)
    wallet_id = forms.CharField(label=_("E-wallet account (phone number or ID)"), max_length=64, required=False,
                                widget=forms.TextInput(attrs={"autocomplete": "off"}))
    consent = forms.BooleanField(
        label=_("I ask to close this card. I understand that the card will stop working for good and that the "
                "refund shown above will be paid to the destination I chose."), required=True,
        error_messages={"required": _("Please confirm that you want to close this card.")})

    def clean(self):
        data = super().clean()
        kind = data.get("destination")
        if kind == "bank":
            code = documents.without_separators(data.get("bank_code", "")).upper()
            account = documents.without_separators(data.get("account_number", "")).upper()
            if not BANK_CODE.fullmatch(code):
                self.add_error("bank_code", _("Enter the 3-digit bank code or an 8 or 11 character SWIFT code."))
            if not re.fullmatch(r"[A-Z0-9]{6,34}", account) or (re.match(r"^[A-Z]{2}[0-9]{2}", account)
                                                                 and not iban.is_valid(account)):
                self.add_error("account_number", _("Enter the account number: 6 to 34 letters or digits."))
            data["bank_code"], data["account_number"] = code, account
        elif kind == "ewallet":
            wallet = documents.half_width(data.get("wallet_id", "")).strip()
            if not data.get("wallet_provider"):
                self.add_error("wallet_provider", _("Choose your e-wallet."))
            if not 3 <= len(wallet) <= 64:
                self.add_error("wallet_id", _("Enter your e-wallet account: 3 to 64 characters."))
            data["wallet_id"] = wallet
        return data

    def refund_destination(self) -> dict:
        data = self.cleaned_data
        kind = data["destination"]
        if kind == "bank":
            return {"type": kind, "bank_code": data["bank_code"], "account_number": data["account_number"]}
        if kind == "ewallet":
            return {"type": kind, "provider": data["wallet_provider"], "wallet_id": data["wallet_id"]}
        return {"type": kind}
