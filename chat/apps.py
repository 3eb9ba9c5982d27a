from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started
        from django.db.models.signals import post_delete

        from chat import db, runtime
        from chat.attachments import service as attachments
        from chat.models import Attachment

        # The process-wide objects, built once from settings (no I/O until they are used).
        runtime.install(runtime.Runtime())
        # A request's connection broken by a database outage is replaced before it is used.
        request_started.connect(db.replace_broken_connection, dispatch_uid="agentsite-replace-broken-connection")
        # An attachment's file goes with its row, whatever deleted it (a chat, a user).
        post_delete.connect(attachments.delete_file_after_commit, sender=Attachment, dispatch_uid="agentsite-attachment-file")
