from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started
        from django.db.models.signals import post_migrate

        from chat import db, runtime
        from chat.search import index as search_index

        # The process-wide objects, built once from settings (no I/O until they are used).
        runtime.install(runtime.Runtime())
        # A request's connection broken by a database outage is replaced before it is used.
        request_started.connect(db.replace_broken_connection, dispatch_uid="agentsite-replace-broken-connection")
        # SQLite drops the search index's triggers with a table a migration rebuilds.
        post_migrate.connect(search_index.ensure, sender=self, dispatch_uid="agentsite-search-index")
