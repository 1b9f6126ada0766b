from django.apps import AppConfig


class SuppressionConfig(AppConfig):
    name = "closeout.suppression"
    label = "suppression"
    verbose_name = "Marketing suppression"
