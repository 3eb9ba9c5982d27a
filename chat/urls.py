"""The pages of the chat app (the chat UI builds on ``chat:home``)."""

from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
]
