from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from chat import db, runtime

        # The process-wide objects, built once from settings (no I/O until they are used).
        runtime.install(runtime.Runtime())
        # A request's connection broken by a database outage is replaced before it is used.
        request_started.connect(db.replace_broken_connection, dispatch_uid="agentsite-replace-broken-connection")
