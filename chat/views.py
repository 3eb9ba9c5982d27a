"""Template views. Reads come from ``chat.selectors``, writes go through ``chat.services``."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse

from chat import selectors, services, ui
from chat.errors import NotFound

HOME_CHATS = 50
# Reversed and replaced by "{id}", so the browser builds chat URLs from Django's own route.
_ANY_ID = uuid.UUID(int=0)


@login_required
def home(request: HttpRequest, chat_id: uuid.UUID | None = None) -> HttpResponse:
    """The chat UI: a new chat at ``/``, one of the user's chats at ``/c/<id>/``.

    The page is a shell; the browser loads the chat through the API and the websocket.
    """
    if chat_id is not None:
        try:
            services.get_session(request.user, chat_id)
        except NotFound:
            raise Http404("No such chat.") from None
    assets = ui.page_assets()
    config = {
        "chatId": str(chat_id) if chat_id else None,
        "username": request.user.get_username(),
        "csrfToken": get_token(request),
        "apiRoot": reverse("api:chat-list").removesuffix("chats/"),
        "chatUrl": reverse("chat:chat", args=[_ANY_ID]).replace(str(_ANY_ID), "{id}"),
        "homeUrl": reverse("chat:home"),
        "loginUrl": reverse("login"),
        "wsRoot": "/ws/chat/",
    }
    chats = selectors.sessions_of(request.user)[:HOME_CHATS]
    response = render(
        request,
        "chat/home.html",
        {"chats": chats, "chat_id": chat_id, "config": config, "import_map": assets.import_map},
    )
    scheme = "wss" if request.is_secure() else "ws"
    response["Content-Security-Policy"] = assets.content_security_policy(f"{scheme}://{request.get_host()}")
    return response
