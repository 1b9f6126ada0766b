from django import forms
from django.utils.translation import gettext_lazy as _

from closeout.identity import documents


class IdentifyForm(forms.Form):
    card_number = forms.CharField(label=_("Card number"), max_length=32,
                                  widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))
    id_type = forms.ChoiceField(label=_("ID document"), choices=[
        ("cn_resident_id", _("Mainland resident ID")), ("hkid", _("HKID")), ("passport", _("Passport"))])
    id_number = forms.CharField(label=_("ID document number"), max_length=40,
                                widget=forms.TextInput(attrs={"autocomplete": "off"}))

    def clean_card_number(self):
        try:
            return documents.normalize_card_number(self.cleaned_data["card_number"])
        except documents.InvalidDocument:
            raise forms.ValidationError(_("This card number is not valid. Please check the digits."))

    def clean(self):
        data = super().clean()
        if "id_type" in data and "id_number" in data:
            try:
                data["id_number"] = documents.normalize_id_number(data["id_type"], data["id_number"])
            except documents.InvalidDocument:
                self.add_error("id_number", _("This ID document number is not valid."))
        return data


class ConfirmForm(forms.Form):
    destination = forms.ChoiceField(label=_("Refund destination"), choices=[
        ("original", _("Original payment method")), ("cash", _("Cash at a branch"))], initial="original")
    consent = forms.BooleanField(
        label=_("I ask to close this card. I understand the card will stop working and the refund shown above "
                "will be paid."), required=True)
