from django.contrib import admin
from django.urls import include, path

from agentsite import accounts, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include(accounts.urlpatterns)),
    path("api/v1/", include("chat.api.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("chat.urls")),
]

# JSON in the API's error shape for unknown /api/ paths; Django's page elsewhere.
handler404 = "chat.api.exceptions.page_not_found"
