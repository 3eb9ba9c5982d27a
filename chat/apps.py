from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The process-wide objects, built once from settings (no I/O until they are used).
        from chat import runtime

        runtime.install(runtime.Runtime())
