from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "closeout.ops"
    label = "ops"
    verbose_name = "Operations"
