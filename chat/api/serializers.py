"""What the API sends and accepts. Output only mirrors stored rows; writes go to services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chat import export
from chat.models import Artifact, ArtifactVersion, ChatSession, Message
from chat.services import TITLE_MAX_LENGTH

# A message's content: a string, or content blocks (text, tool_use, tool_result …) whose
# extra keys (display_data, interactive_data, artifact_data) are kept for the UI.
CONTENT_SCHEMA = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"type": "string"}},
                "required": ["type"],
                "additionalProperties": True,
            },
        },
    ]
}


@extend_schema_field(CONTENT_SCHEMA)
class ContentField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class ObjectField(serializers.JSONField):
    pass


class TextField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn ``0`` into ``"0"``."""

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ChatSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatSession
        fields = export.CHAT_FIELDS
        read_only_fields = fields


class ChatCreateSerializer(serializers.Serializer):
    title = TextField(max_length=TITLE_MAX_LENGTH, required=False, allow_blank=True)


class ChatRenameSerializer(serializers.Serializer):
    title = TextField(max_length=TITLE_MAX_LENGTH)


class MessageSerializer(serializers.ModelSerializer):
    content = ContentField()
    usage = ObjectField(
        help_text="Provider usage of an assistant reply: input, output, cache read and write tokens."
    )
    context = ObjectField(
        help_text="Which stored messages went into the prompt of an assistant reply: "
        "first_sequence, last_sequence, dropped."
    )

    class Meta:
        model = Message
        fields = export.MESSAGE_FIELDS
        read_only_fields = fields


class MessagePageSerializer(serializers.Serializer):
    results = MessageSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null at the end.")
    next_after = serializers.IntegerField(allow_null=True, help_text="The `after` of the next page, or null.")


class ArtifactSerializer(serializers.ModelSerializer):
    chat = serializers.UUIDField(source="session_id", read_only=True)

    class Meta:
        model = Artifact
        # No content: a list says what each artifact is; the content comes with the artifact.
        fields = (
            "id",
            "chat",
            "tool_use_id",
            "kind",
            "title",
            "status",
            "version",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ArtifactVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ArtifactVersion
        fields = ("version", "title", "content", "created_at")
        read_only_fields = fields


class ArtifactDetailSerializer(ArtifactSerializer):
    versions = ArtifactVersionSerializer(
        many=True, read_only=True, help_text="Earlier contents, oldest first."
    )

    class Meta(ArtifactSerializer.Meta):
        fields = (*ArtifactSerializer.Meta.fields, "content", "versions")
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class ExportArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = export.ARTIFACT_FIELDS
        read_only_fields = fields


class ExportSerializer(serializers.Serializer):
    """The JSON export (documentation only: the export is written by ``chat.export``)."""

    chat = ChatSerializer()
    artifacts = ExportArtifactSerializer(many=True)
    messages = MessageSerializer(many=True)
