from django.apps import AppConfig


class AftercareConfig(AppConfig):
    name = "closeout.aftercare"
    label = "aftercare"
    verbose_name = "Aftercare: charge guard, reconciliation, retention, case export"
