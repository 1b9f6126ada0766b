from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "closeout.integrations.sms"
    label = "sms"
