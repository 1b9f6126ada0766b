from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "closeout.certificates"
    label = "certificates"
    verbose_name = "Closure certificates"
