from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from closeout.common.text import UnusableLabel, one_line_label
from closeout.console.models import NAME_MAX_LENGTH
from closeout.identity import documents
from closeout.returns.models import (
    DESK_MAX_LENGTH,
    HAND_BACK_NOTE_MAX_LENGTH,
    TRACKING_REF_MAX_LENGTH,
    Destruction,
    HandBack,
)

ID_TYPES = [("cn_resident_id", _("Mainland resident ID")), ("hkid", _("HKID")), ("passport", _("Passport"))]
SECRET = {"autocomplete": "off", "spellcheck": "false"}


class ConsoleForm(forms.Form):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SignInForm(ConsoleForm):
    # The cursor starts where the typing does, at sign-in and at each step after: no mouse needed.
    email = forms.EmailField(label=pgettext_lazy("contact", "Email"), max_length=254,
                             widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"}))
    password = forms.CharField(label=_("Password"), max_length=200, widget=forms.PasswordInput)


class CodeForm(ConsoleForm):
    code = forms.CharField(label=_("Code from your authenticator app"), max_length=8,
                           widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code",
                                                         "autofocus": True}))


class SearchForm(ConsoleForm):
    q = forms.CharField(label=_("Reference, return label, card number, phone, email or name"), max_length=254, required=False)


class ReasonForm(ConsoleForm):
    reason = forms.CharField(label=_("Reason"), max_length=300)


class NoteForm(ConsoleForm):
    text = forms.CharField(label=_("Note"), max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))


class AssistedIdentifyForm(ConsoleForm):
    channel = forms.ChoiceField(label=_("Channel"), choices=[
        ("phone", _("Phone")), ("email", pgettext_lazy("contact", "Email")), ("chat", _("Online chat")), ("branch", _("Branch counter"))])
    channel_ref = forms.CharField(label=_("Call, email or chat reference"), max_length=120)
    card_number = forms.CharField(label=_("Card number"), max_length=32, widget=forms.TextInput(attrs=SECRET))
    holder_name = forms.CharField(label=_("Holder name"), max_length=200)
    contact = forms.CharField(label=_("Phone or email on file"), max_length=254, widget=forms.TextInput(attrs=SECRET))
    id_type = forms.ChoiceField(label=_("ID document"), choices=ID_TYPES)
    # Never echoed back into the page.
    id_number = forms.CharField(label=_("ID document number"), max_length=40,
                                widget=forms.PasswordInput(attrs=SECRET, render_value=False))
    check_card_number = forms.BooleanField(label=_("Card number read back and confirmed"))
    check_name = forms.BooleanField(label=_("Holder name confirmed"))
    check_contact = forms.BooleanField(label=_("Contact confirmed"))
    check_id_document = forms.BooleanField(label=_("ID document confirmed"))

    def clean(self):
        data = super().clean()
        if data.get("card_number"):
            try:
                data["card_number"] = documents.normalize_card_number(data["card_number"])
            except documents.InvalidDocument:
                self.add_error("card_number", _("This card number is not valid. Please check the digits."))
        if data.get("id_type") and data.get("id_number"):
            try:
                data["id_number"] = documents.normalize_id_number(data["id_type"], data["id_number"])
            except documents.InvalidDocument:
                self.add_error("id_number", _("This ID document number is not valid."))
        contact = data.get("contact", "")
        if contact:
            try:
                if "@" in contact:
                    documents.normalize_email(contact)
                else:
                    documents.normalize_phone(contact)
            except documents.InvalidDocument:
                self.add_error("contact", _("Enter a valid phone number with country code, or an email address."))
        return data


class AssistedConsentForm(ConsoleForm):
    destination = forms.ChoiceField(label=_("Refund destination"), choices=[
        ("original", _("Original payment method")), ("bank", _("Bank account")), ("cash", _("Cash at a branch"))])
    bank_code = forms.CharField(label=_("Bank code"), max_length=20, required=False)
    account_number = forms.CharField(label=_("Bank account number"), max_length=40, required=False,
                                     widget=forms.TextInput(attrs=SECRET))
    reason = forms.CharField(label=_("Reason for closing (optional)"), max_length=200, required=False)
    consent_ref = forms.CharField(label=_("Consent reference (call, email or chat)"), max_length=120)
    consent = forms.BooleanField(label=_("The customer heard the quote and agreed to close the card"))

    def clean(self):
        data = super().clean()
        if data.get("destination") == "bank" and not data.get("account_number"):
            self.add_error("account_number", _("Enter the bank account number."))
        return data


class BookForm(ConsoleForm):
    card_number = forms.CharField(label=_("Card number"), max_length=32, widget=forms.TextInput(attrs=SECRET))
    starts_at = forms.DateTimeField(label=_("Slot"), input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60},
                                                               format="%Y-%m-%dT%H:%M"))
    reference = forms.CharField(label=_("Case reference (optional)"), max_length=20, required=False)

    def clean_card_number(self):
        try:
            return documents.normalize_card_number(self.cleaned_data["card_number"])
        except documents.InvalidDocument:
            raise forms.ValidationError(_("This card number is not valid. Please check the digits."))


class RescheduleForm(ConsoleForm):
    starts_at = forms.DateTimeField(label=_("New slot"), input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])


class CounterStartForm(ConsoleForm):
    reference = forms.CharField(label=_("Case reference"), max_length=20)
    id_type = forms.ChoiceField(label=_("ID document"), choices=ID_TYPES)
    id_number = forms.CharField(label=_("ID document number"), max_length=40,
                                widget=forms.PasswordInput(attrs=SECRET, render_value=False))
    original_seen = forms.BooleanField(label=_("I have seen the original document (not a copy)"))
    photo_matches = forms.BooleanField(label=_("The photo matches the person at the counter"))


class CashHandOverForm(ConsoleForm):
    id_type = forms.ChoiceField(label=_("ID document"), choices=ID_TYPES)
    id_number = forms.CharField(label=_("ID document number"), max_length=40,
                                widget=forms.PasswordInput(attrs=SECRET, render_value=False))
    original_seen = forms.BooleanField(label=_("I have seen the original document (not a copy)"))
    cash_counted = forms.BooleanField(label=_("I counted the cash out to the customer"))


class TakeCardForm(ConsoleForm):
    method = forms.ChoiceField(label=_("Destruction method"), choices=[
        (Destruction.Method.CUT, _("Cut through chip")), (Destruction.Method.PUNCH, _("Chip punched")),
        (Destruction.Method.SHRED, _("Shredded"))])


class ScanForm(ConsoleForm):
    code = forms.CharField(label=_("Return label code or card number"), max_length=40,
                           widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}))
    card_number = forms.CharField(label=_("Card number on the card inside (optional)"), max_length=32,
                                  required=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))


class DeskForm(ConsoleForm):
    desk = forms.CharField(label=_("Desk name"), required=False, strip=False,
                           widget=forms.TextInput(attrs={"maxlength": DESK_MAX_LENGTH, "autocomplete": "off"}))

    def clean_desk(self):
        """The name tidied onto one line; empty when the desk is to have none."""
        return _one_line(self.cleaned_data["desk"], limit=DESK_MAX_LENGTH, blank_ok=True)


class DestroyForm(ConsoleForm):
    method = forms.ChoiceField(label=_("Destruction method"), choices=[
        (Destruction.Method.SHRED, _("Shredded")), (Destruction.Method.PUNCH, _("Chip punched")),
        (Destruction.Method.CUT, _("Cut through chip")), (Destruction.Method.INCINERATE, _("Incinerated"))])
    batch = forms.CharField(label=_("Batch"), max_length=40)
    witness_email = forms.EmailField(label=_("Witness: another staff member's email"), max_length=254)
    witness_code = forms.CharField(label=_("Witness's code from their authenticator app"), max_length=8,
                                   widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))


class HandBackForm(ConsoleForm):
    """How a card kept for the customer went back to them. The note is kept apart from the audit
    trail and cannot be shredded with the holder's data: the label asks for no address or phone."""

    method = forms.ChoiceField(label=_("How the card goes back"), choices=[
        (HandBack.Method.POST, _("Posted back to the holder")),
        (HandBack.Method.COUNTER, _("Collected at a branch counter"))])
    tracking_ref = forms.CharField(label=_("Tracking reference (posted back)"), required=False, strip=False,
                                   widget=forms.TextInput(attrs={"maxlength": TRACKING_REF_MAX_LENGTH,
                                                                 "autocomplete": "off"}))
    note = forms.CharField(label=_("Note (optional; no address or phone number)"), required=False, strip=False,
                           widget=forms.TextInput(attrs={"maxlength": HAND_BACK_NOTE_MAX_LENGTH,
                                                         "autocomplete": "off"}))

    def clean_tracking_ref(self):
        return _one_line(self.cleaned_data["tracking_ref"], limit=TRACKING_REF_MAX_LENGTH, blank_ok=True)

    def clean_note(self):
        return _one_line(self.cleaned_data["note"], limit=HAND_BACK_NOTE_MAX_LENGTH, blank_ok=True)

    def clean(self):
        data = super().clean()
        method, tracking_ref = data.get("method"), data.get("tracking_ref")
        if method == HandBack.Method.POST and tracking_ref == "":
            self.add_error("tracking_ref", _("Enter the carrier's tracking reference of the envelope posted back."))
        elif method == HandBack.Method.COUNTER and tracking_ref:
            self.add_error("tracking_ref", _("A card collected at a counter has no tracking reference: leave this "
                                             "empty."))
        return data


class ResolveForm(ConsoleForm):
    resolution = forms.CharField(label=_("What was done"), max_length=300)
    reference = forms.CharField(label=_("Case it belongs to (optional)"), max_length=20, required=False)


class StaffNameForm(ConsoleForm):
    # The length that counts is the one left once the spaces are tidied (`clean_name`).
    name = forms.CharField(label=_("Name"), strip=False, error_messages={"required": _("Enter a name.")},
                           widget=forms.TextInput(attrs={"maxlength": NAME_MAX_LENGTH, "autocomplete": "off"}))

    def clean_name(self):
        return _one_line(self.cleaned_data["name"], limit=NAME_MAX_LENGTH)


def _one_line(text: str, *, limit: int, blank_ok: bool = False) -> str:
    """`common.text.one_line_label` for a form field: what is wrong said in the staff's language."""
    try:
        return one_line_label(text, limit=limit, blank_ok=blank_ok)
    except UnusableLabel as exc:
        raise forms.ValidationError(_label_problem(exc)) from None


def _label_problem(exc: UnusableLabel) -> str:
    if exc.problem == "too_long":
        return _("Use at most %(limit)s characters (this has %(length)s).") % {"limit": exc.limit,
                                                                               "length": exc.length}
    if exc.problem == "control":
        return _("Use letters, digits, spaces and punctuation only.")
    return _("Enter a name.")
