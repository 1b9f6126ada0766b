from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "closeout.identity"
