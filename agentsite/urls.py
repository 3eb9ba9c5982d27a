from django.contrib import admin
from django.urls import include, path

from agentsite import accounts, health, pages
from chat.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts.urlpatterns)),
    path("api/v1/", include("chat.api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("favicon.ico", pages.favicon, name="favicon"),
    path("", include("chat.urls")),
]

# JSON in the API's error shape for unknown /api/ paths; the site's 404.html elsewhere.
# 403 and 500 use Django's handlers, which render templates/403.html and 500.html.
handler404 = "chat.api.exceptions.page_not_found"
