from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "closeout.api"

    def ready(self):
        from django.core.signals import request_finished

        from closeout.api.keys import apikey_uses_record

        request_finished.connect(apikey_uses_record, dispatch_uid="closeout.api.keys.apikey_uses_record")
