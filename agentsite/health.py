"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chat import runtime


@never_cache
@require_GET
def healthz(request):
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


@never_cache
@require_GET
def readyz(request):
    """The database and the cache both answer; 503 names what does not."""
    checks = {"database": _database_ok(), "cache": async_to_sync(runtime.get().cache.ping)()}
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
