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
    resets_at = serializers.DateTimeField(
        required=False, help_text="With `quota_exceeded` and `quota_busy`: when the usage limit reached resets."
    )


class ChatSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatSession
        fields = export.CHAT_FIELDS
        read_only_fields = fields


class ChatCreateSerializer(serializers.Serializer):
    title = TextField(max_length=TITLE_MAX_LENGTH, required=False, allow_blank=True)


class ChatRenameSerializer(serializers.Serializer):
    title = TextField(max_length=TITLE_MAX_LENGTH)


class VersionsSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Which version this is, from 1 (the oldest).")
    count = serializers.IntegerField(help_text="How many versions there are.")


class MessageSerializer(serializers.ModelSerializer):
    content = ContentField()
    versions = serializers.SerializerMethodField(
        help_text="Set when the message has other versions (edits, regenerated replies): see `versions/`."
    )
    usage = ObjectField(
        help_text="Provider usage of an assistant reply: input, output, cache read and write tokens, and its cost_usd."
    )
    context = ObjectField(
        help_text="Which stored messages went into the prompt of an assistant reply: "
        "first_sequence, last_sequence, dropped, and branch when the path ran through an edit or "
        "regeneration (the range is of the path that leads to that branch)."
    )

    class Meta:
        model = Message
        fields = (*export.MESSAGE_FIELDS, "versions")
        read_only_fields = fields

    @extend_schema_field(VersionsSerializer(allow_null=True))
    def get_versions(self, message: Message) -> dict[str, int] | None:
        found = self.context.get("versions", {}).get(message.pk)
        return None if found is None else {"index": found.index, "count": found.count}


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


class ExportMessageSerializer(serializers.ModelSerializer):
    content = ContentField()
    usage = ObjectField()
    context = ObjectField()

    class Meta:
        model = Message
        fields = export.MESSAGE_FIELDS
        read_only_fields = fields


class ExportChatSerializer(ChatSerializer):
    active_branch = serializers.IntegerField(help_text="The branch whose path the chat shows.")

    class Meta(ChatSerializer.Meta):
        fields = (*ChatSerializer.Meta.fields, "active_branch")
        read_only_fields = fields


class ExportBranchSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    parent = serializers.IntegerField(help_text="The branch holding message `fork_sequence` of this one's path.")
    fork_sequence = serializers.IntegerField(help_text="This branch continues its parent's path after this message.")
    created_at = serializers.DateTimeField()


class ExportSerializer(serializers.Serializer):
    """The JSON export (documentation only: the export is written by ``chat.export``)."""

    chat = ExportChatSerializer()
    branches = ExportBranchSerializer(many=True, help_text="Where each branch forks (none for a chat never edited).")
    artifacts = ExportArtifactSerializer(many=True)
    summaries = serializers.ListField(
        child=serializers.DictField(),
        help_text=(
            "Every summary the model was sent instead of a path's first messages (id, branch, first_sequence, "
            "last_sequence, last_cumulative, text, tokens, model, usage, previous_id, created_at): it holds for "
            "paths through message (branch, last_sequence)."
        ),
    )
    messages = ExportMessageSerializer(many=True, help_text="Every message of every branch, by branch and sequence.")
