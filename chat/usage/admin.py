"""The admin's usage pages: the ledger (read-only), the quota overrides, and the usage
report per user and model by day, with a CSV export. Registered by ``chat.admin``."""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from chat.admin import ReadOnlyMixin
from chat.models import UsageLimit, UsageRecord
from chat.usage import prices, reports

MAX_DAYS = 366
CSV_COLUMNS = (
    "day",
    "user_id",
    "username",
    "model",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tokens",
    "tool_calls",
    "cost_usd",
)


class ReportForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        today = timezone.now().astimezone(dt.timezone.utc).date()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"].replace(day=1)
        if data["start"] > data["end"]:
            raise forms.ValidationError("The start must not be after the end.")
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise forms.ValidationError(f"At most {MAX_DAYS} days at a time.")
        return data


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The ledger, one model call a row: read-only (it is what was used)."""

    list_display = ("created_at", "user", "kind", "model", "input_tokens", "output_tokens", "cache_read_tokens",
                    "cache_write_tokens", "tool_calls", "cost", "billed", "partial")
    list_filter = ("kind", "billed", "partial", "model")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    search_fields = ("user__username", "model", "=key")
    show_full_result_count = False
    change_list_template = "admin/chat/usagerecord/change_list.html"

    @admin.display(description="cost (USD)", ordering="cost_micros")
    def cost(self, record: UsageRecord) -> str:
        return f"{prices.dollars(record.cost_micros):.6f}"

    def get_urls(self) -> list[Any]:
        report = self.admin_site.admin_view(self.report_view)
        return [path("report/", report, name="chat_usagerecord_report"), *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        """Usage per UTC day, user and model (one statement whatever the number of rows)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ReportForm(request.GET)
        rows: list[dict[str, Any]] = []
        if form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
            rows = reports.report(start, end)
            if request.GET.get("format") == "csv":
                return _csv(rows, start, end)
            form = ReportForm({"start": start, "end": end})  # shows the defaults it used
        totals = {key: sum(r[key] for r in rows) for key in ("calls", "tokens", "tool_calls")}
        totals["cost_usd"] = round(sum(r["cost_usd"] for r in rows), 6)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Usage report",
            "form": form,
            "rows": rows,
            "totals": totals,
            "csv_query": _csv_query(request),
        }
        return TemplateResponse(request, "admin/chat/usagerecord/report.html", context)


def _csv_query(request: HttpRequest) -> str:
    query = request.GET.copy()
    query["format"] = "csv"
    return query.urlencode()


def _csv(rows: list[dict[str, Any]], start: dt.date, end: dt.date) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{start.isoformat()}-{end.isoformat()}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = {**row, "username": row.get("user__username", "")}
        # A username is the user's own text: one starting like a formula must stay text in a spreadsheet.
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return response


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class UsageLimitForm(forms.ModelForm):
    class Meta:
        model = UsageLimit
        fields = ("user", "group", "unlimited", "tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("group")):
            raise forms.ValidationError("Choose a user or a group (one of them).")
        return data


@admin.register(UsageLimit)
class UsageLimitAdmin(admin.ModelAdmin):
    """Quota overrides: an empty field inherits (a user's from their groups, a group's from
    the defaults in settings)."""

    form = UsageLimitForm
    list_display = ("__str__", "unlimited", "tokens_per_day", "tokens_per_month", "cost_per_day", "cost_per_month", "usage")
    list_select_related = ("user", "group")
    autocomplete_fields = ("user", "group")
    search_fields = ("user__username", "group__name")

    @admin.display(description="usage")
    def usage(self, limit: UsageLimit) -> str:
        if not limit.user_id:
            return "—"
        url = reverse("admin:chat_usagerecord_changelist")
        return format_html('<a href="{}?user__id__exact={}">calls</a>', url, limit.user_id)
