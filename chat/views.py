"""Template views. Reads come from ``chat.selectors``, writes go through ``chat.services``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from chat import selectors

HOME_CHATS = 50


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The signed-in user's chats (the chat UI replaces this page's template)."""
    chats = selectors.sessions_of(request.user)[:HOME_CHATS]
    return render(request, "chat/home.html", {"chats": chats})
