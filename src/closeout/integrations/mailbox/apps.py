from django.apps import AppConfig


class MailboxConfig(AppConfig):
    name = "closeout.integrations.mailbox"
    label = "mailbox"
