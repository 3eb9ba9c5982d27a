"""Prometheus metrics: every one the service exports, defined here, and the /metrics view.

The code that does the work records into these (a counter's ``inc`` costs about a
microsecond; nothing is recorded per streamed event). Each process keeps its own values;
with several daphne processes on one machine, set ``PROMETHEUS_MULTIPROC_DIR`` to a
directory they share (emptied before they start) and any of them answers for all.

``/metrics`` answers a request from one of ``METRICS_ALLOWED_NETWORKS`` (default: this
machine only) or one carrying ``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

TURNS = Counter("agentsite_turns_started_total", "User actions that started a run", ["kind"])
RUNS_ACTIVE = Gauge("agentsite_runs_active", "Runs going on in this process", multiprocess_mode="livesum")
FIRST_DELTA = Histogram(
    "agentsite_first_delta_seconds", "From a user action to the first word of its reply", buckets=_LATENCY
)
MODEL_CALLS = Histogram(
    "agentsite_model_call_seconds", "Model calls, from request to the reply's end", ["provider"], buckets=_LATENCY
)
MODEL_ERRORS = Counter("agentsite_model_errors_total", "Model calls that failed", ["provider", "code"])
TOKENS = Counter("agentsite_model_tokens_total", "Tokens of model calls", ["provider", "kind"])
TOOL_CALLS = Counter("agentsite_tool_calls_total", "Tool calls", ["tool", "outcome"])
CACHE_READS = Counter("agentsite_cache_reads_total", "Conversation reads, answered by the cache or not", ["result"])
EVENT_LOG_APPENDS = Histogram(
    "agentsite_event_log_append_seconds", "Writing a batch of events to the event log", buckets=_FAST
)
SOCKETS_OPEN = Gauge("agentsite_sockets_open", "Chat websockets open on this process", multiprocess_mode="livesum")
GAPS_FILLED = Counter("agentsite_gaps_filled_total", "Events a socket missed and read back from the log")
RESYNCS = Counter("agentsite_resyncs_total", "Sockets told to reload: the log could not fill their gap")


def model_call(provider: str, seconds: float, usage: dict[str, int]) -> None:
    MODEL_CALLS.labels(provider).observe(seconds)
    for kind in ("input", "output", "cache_read", "cache_write"):
        count = usage.get(f"{kind}_tokens", 0)
        if count:
            TOKENS.labels(provider, kind).inc(count)


def _registry() -> CollectorRegistry | None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return None  # the default registry, this process's own


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        offered = request.headers.get("Authorization", "")
        if hmac.compare_digest(offered.encode(), f"Bearer {token}".encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("Not allowed.\n", status=403, content_type="text/plain")
    registry = _registry()
    output = generate_latest(registry) if registry is not None else generate_latest()
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)
