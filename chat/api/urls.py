"""/api/v1/: chats, their messages, artifacts and exports; search; tokens; the schema and its docs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from chat.api import attachments, context, search, usage, versions, views

app_name = "api"

urlpatterns = [
    path("chats/", views.ChatList.as_view(), name="chat-list"),
    path("chats/<uuid:chat_id>/", views.ChatDetail.as_view(), name="chat-detail"),
    path("chats/<uuid:chat_id>/messages/", views.MessageList.as_view(), name="chat-messages"),
    path("chats/<uuid:chat_id>/messages/<uuid:message_id>/edit/", versions.EditMessage.as_view(), name="message-edit"),
    path(
        "chats/<uuid:chat_id>/messages/<uuid:message_id>/regenerate/",
        versions.RegenerateMessage.as_view(),
        name="message-regenerate",
    ),
    path(
        "chats/<uuid:chat_id>/messages/<uuid:message_id>/versions/",
        versions.MessageVersions.as_view(),
        name="message-versions",
    ),
    path("chats/<uuid:chat_id>/messages/<uuid:message_id>/switch/", versions.SwitchVersion.as_view(), name="message-switch"),
    path("chats/<uuid:chat_id>/messages/<uuid:message_id>/fork/", versions.ForkChat.as_view(), name="message-fork"),
    path("chats/<uuid:chat_id>/context/", context.ChatContext.as_view(), name="chat-context"),
    path("chats/<uuid:chat_id>/compact/", context.CompactChat.as_view(), name="chat-compact"),
    path("chats/<uuid:chat_id>/artifacts/", views.ChatArtifactList.as_view(), name="chat-artifacts"),
    path("chats/<uuid:chat_id>/export/", views.ChatExport.as_view(), name="chat-export"),
    path("artifacts/<uuid:artifact_id>/", views.ArtifactDetail.as_view(), name="artifact-detail"),
    path(
        "artifacts/<uuid:artifact_id>/download/", views.ArtifactDownload.as_view(), name="artifact-download"
    ),
    path("chats/<uuid:chat_id>/attachments/", attachments.ChatAttachments.as_view(), name="chat-attachments"),
    path("attachments/<uuid:attachment_id>/", attachments.AttachmentDetail.as_view(), name="attachment-detail"),
    path(
        "attachments/<uuid:attachment_id>/download/",
        attachments.AttachmentDownload.as_view(),
        name="attachment-download",
    ),
    path("usage/", usage.UsageView.as_view(), name="usage"),
    path("search/", search.Search.as_view(), name="search"),
    path("auth/token/", views.AuthTokenView.as_view(), name="auth-token"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path(
        "docs/redoc/",
        SpectacularRedocView.as_view(url_name="api:schema", template_name="api/redoc.html"),
        name="redoc",
    ),
]
