from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "closeout.portal"
