"""The pages of the chat app: the chat UI, for a new chat or one of the user's chats."""

from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:chat_id>/", views.home, name="chat"),
]
