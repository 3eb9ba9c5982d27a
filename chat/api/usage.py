"""GET /api/v1/usage/: what a user's model calls used and cost (``chat.usage.reports``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.api.schema import AUTH_ERRORS, errors
from chat.errors import NotFound
from chat.usage import reports

MAX_DAYS = 366


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First UTC day (default: the 1st of this month).")
    end = serializers.DateField(required=False, help_text="Last UTC day (default: today).")
    user = serializers.IntegerField(required=False, min_value=1, help_text="Staff only: another user's id.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # DRF treats an empty value of an optional field as absent; here it is a mistake.
        empty = [name for name in self.fields if name in data and data.get(name) == ""]
        if empty:
            raise serializers.ValidationError({name: "may not be empty." for name in empty})
        return super().to_internal_value(data)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        today = timezone.now().astimezone(dt.timezone.utc).date()
        data.setdefault("end", today)
        data.setdefault("start", data["end"].replace(day=1))
        if data["start"] > data["end"]:
            raise serializers.ValidationError({"start": "must not be after end."})
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise serializers.ValidationError({"start": f"at most {MAX_DAYS} days at a time."})
        return data


class _PeriodSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(help_text="Input, output, cache read and cache write tokens.")
    cost_usd = serializers.FloatField()
    resets_at = serializers.DateTimeField(help_text="When this period's limits reset (UTC).")


class _LimitsSerializer(serializers.Serializer):
    tokens_per_day = serializers.IntegerField(allow_null=True)
    tokens_per_month = serializers.IntegerField(allow_null=True)
    cost_per_day_usd = serializers.FloatField(allow_null=True)
    cost_per_month_usd = serializers.FloatField(allow_null=True)


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    model = serializers.CharField()
    calls = serializers.IntegerField(help_text="Model calls (replies, titles, summaries).")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()
    tool_calls = serializers.IntegerField()
    cost_usd = serializers.FloatField()


class _UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    user = _UserSerializer()
    today = _PeriodSerializer()
    month = _PeriodSerializer()
    limits = _LimitsSerializer(help_text="Null: no limit.")
    start = serializers.DateField()
    end = serializers.DateField()
    days = UsageDaySerializer(many=True, help_text="Per UTC day and model, oldest first.")


class UsageView(APIView):
    @extend_schema(
        summary="Your usage: today, this month, your limits, and per day and model",
        description=(
            "What your model calls used (tokens) and cost (US dollars, from the site's price table), "
            "today and this calendar month (UTC) against your limits, and per UTC day and model from "
            "`start` to `end` (at most 366 days). Staff may ask for any user with `user`; for anyone "
            "else `user` other than their own id is a 404."
        ),
        parameters=[
            OpenApiParameter("start", dt.date, description="First UTC day (default: the 1st of this month)."),
            OpenApiParameter("end", dt.date, description="Last UTC day (default: today)."),
            OpenApiParameter("user", int, description="Staff only: another user's id."),
        ],
        responses={200: UsageSerializer, **errors(400, 404, *AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = request.user
        wanted = query.validated_data.get("user")
        if wanted is not None and wanted != user.pk:
            if not user.is_staff:
                raise NotFound("No such user.")
            user = get_user_model().objects.filter(pk=wanted).first()
            if user is None:
                raise NotFound("No such user.")
        data = reports.summary(user.pk, query.validated_data["start"], query.validated_data["end"])
        return Response(UsageSerializer({**data, "user": user}).data)
