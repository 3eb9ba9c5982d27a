"""What a conversation is made of, as stored in the durable store (L2).

Counters on ``ChatSession`` (``last_sequence``, ``total_tokens``, ``revision``) are only ever
changed by one atomic UPDATE in ``chat.storage.database``; that row update is also the lock
that orders concurrent writers of one session.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q


class ChatSession(models.Model):
    class State(models.TextChoices):
        IDLE = "idle"
        RUNNING = "running"
        AWAITING_INPUT = "awaiting_input"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    title = models.CharField(max_length=200, blank=True, default="")
    state = models.CharField(max_length=20, choices=State.choices, default=State.IDLE)
    # Every message stored, on any branch.
    message_count = models.PositiveIntegerField(default=0)
    # The active path (``Branch``): its branch, and the sequence and running token sum of
    # its newest message (the path's leaf).
    active_branch = models.PositiveIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    last_sequence = models.PositiveIntegerField(default=0)
    # Branches numbered so far (0, the first path, needs no row).
    branch_count = models.PositiveIntegerField(default=0)
    # The newest ``Summary`` on the active path (None: it has none), kept by every change
    # of the path and every compaction (``chat.storage.tree``, ``chat.storage.summaries``),
    # so that the turn reads it with the chat's lock rather than looking for it.
    path_summary = models.UUIDField(null=True, blank=True)
    # Bumped by every write to the session's messages; the cache compares it so that a
    # reader holding older data can never overwrite newer data.
    revision = models.BigIntegerField(default=0)
    # The agent run in progress (state RUNNING), claimed by one process at a time: the
    # run's id and the serving process (``Worker``) that runs it. A run whose worker stopped
    # beating died with it, and any process may fail it.
    run_id = models.UUIDField(null=True, blank=True)
    run_worker = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="chat_session_owner_recent"),
            models.Index(fields=["run_worker"], name="chat_session_running", condition=models.Q(state="running")),
        ]

    def __str__(self) -> str:
        return self.title or f"Chat {self.id}"


class Worker(models.Model):
    """A serving process. It beats every ``RUN_HEARTBEAT_INTERVAL`` while it lives; the runs
    it claimed are failed once its beat is ``RUN_STALE_AFTER`` old (``chat.runs.liveness``).
    One beat per process, not per run: a process's runs live and die together."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    beat_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


class Branch(models.Model):
    """A fork in a chat's tree: a run of messages with consecutive sequences that continues
    another branch's path after its message ``fork_sequence``.

    A conversation is a tree; what the chat shows and the model sees is one path through
    it, from the first message to a leaf (``ChatSession.active_branch``). A path is a short
    chain of branch segments, one per fork along it: branch 0 (the chat's first messages,
    which needs no row) up to a fork, the next branch up to the next fork, and so on.
    Editing the message at sequence d (or regenerating that reply) starts a branch forked
    at d - 1. Each message's ``cumulative_tokens`` runs along its path, so a segment's
    messages within a token budget are one index range on (session, branch, cumulative):
    a budget load costs one range per fork on the path, never a walk over the tree.
    Rows are written once (``segments`` never changes); ``selected_at`` follows the user.
    """

    session = models.ForeignKey("ChatSession", on_delete=models.CASCADE, related_name="branches", db_index=False)
    number = models.PositiveIntegerField()
    # The branch holding message ``fork_sequence`` of this one's path, and that message's
    # running token sum (0 and 0 for a fork before the first message).
    parent = models.PositiveIntegerField()
    fork_sequence = models.PositiveIntegerField()
    fork_cumulative = models.BigIntegerField()
    # The path from the first message to this branch's messages: [branch, first sequence,
    # last sequence or null, running token sum at the last or null], oldest first.
    segments = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # When the user last chose a path through this branch: switching to a message's other
    # version lands on the branch under it the user chose last.
    selected_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "number"], name="chat_branch_session_number")]

    def __str__(self) -> str:
        return f"{self.session_id} branch {self.number} (after #{self.fork_sequence} of {self.parent})"


class Message(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: (session, sequence) and the other composite indexes lead with it.
    session = models.ForeignKey(
        ChatSession, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # The branch it was written on (``Branch``; 0: the chat's first path) and its place on
    # its path: 1 for the first message, gap-free along any path.
    branch = models.PositiveIntegerField(default=0)
    sequence = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=[("user", "user"), ("assistant", "assistant")])
    # A string or a list of content blocks; extra keys the UI needs (display_data, …) stay
    # here and are stripped only when the history is sent to the model.
    content = models.JSONField()
    tokens = models.PositiveIntegerField()
    tokens_estimated = models.BooleanField(default=True)
    # Sum of ``tokens`` over this message and every earlier one on its path, written at
    # insert. "The newest messages that fit in N tokens" becomes an index range scan on
    # (session, branch, cumulative_tokens) per branch on the path, instead of a window sum
    # over the whole history.
    cumulative_tokens = models.BigIntegerField()
    # False while an assistant reply is still streaming, and forever for one that was
    # cancelled or cut off by a crash.
    finished = models.BooleanField(default=True)
    # Idempotency key sent by the client with a user message.
    client_id = models.CharField(max_length=100, null=True, blank=True)
    # Provider usage for assistant messages: input/output/cache read/cache write tokens.
    usage = models.JSONField(null=True, blank=True)
    # Which stored messages went into the prompt that produced this assistant message.
    context = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "branch", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["session", "branch", "sequence"], name="chat_message_branch_sequence"),
            models.UniqueConstraint(
                fields=["session", "client_id"],
                condition=Q(client_id__isnull=False),
                name="chat_message_session_client_id",
            ),
        ]
        indexes = [
            models.Index(fields=["session", "branch", "cumulative_tokens"], name="chat_msg_branch_cumulative"),
            models.Index(fields=["session", "created_at"], name="chat_msg_sess_created"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.sequence} {self.role}"


class LoopState(models.Model):
    """An agent loop paused on an interactive tool, waiting for the user's answer."""

    session = models.OneToOneField(ChatSession, on_delete=models.CASCADE, related_name="loop_state")
    tool_use_id = models.CharField(max_length=100)
    tool_name = models.CharField(max_length=100)
    step = models.PositiveIntegerField(default=0)
    question = models.TextField()
    options = models.JSONField(default=list)
    # tool_result blocks of the same assistant turn, kept until the answer completes them.
    pending_results = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.session_id} waiting on {self.tool_name}"


class Artifact(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        GENERATING = "generating"
        COMPLETE = "complete"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        ChatSession, on_delete=models.CASCADE, related_name="artifacts", db_index=False
    )
    tool_use_id = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=20)
    title = models.CharField(max_length=200)
    content = models.TextField(blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["session", "created_at"], name="chat_artifact_sess_created")]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class ArtifactVersion(models.Model):
    """An earlier content of an artifact, kept when it is edited."""

    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    content = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["artifact", "version"]
        constraints = [
            models.UniqueConstraint(fields=["artifact", "version"], name="chat_artifact_version_unique")
        ]


class _AttachmentStorage(Storage):
    """``STORAGES["attachments"]``, looked up on every use: a FileField keeps the storage
    it was given at import, and settings (tests, a deployment's S3 bucket) decide later."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__"):
            return object.__getattribute__(self, name)
        return getattr(storages["attachments"], name)


_ATTACHMENT_STORAGE = _AttachmentStorage()


def attachment_storage() -> Storage:
    """Where attachment files live: ``STORAGES["attachments"]`` (``var/attachments`` by
    default, S3-compatible object storage when configured)."""
    return _ATTACHMENT_STORAGE


class Attachment(models.Model):
    """A file a user uploaded to a chat, to send to the model with a message.

    Uploaded first (``chat.attachments``), then referenced by id from a ``user_message``: a
    message's content holds an image or document block whose source names the attachment,
    and the provider reads the file when it builds a request. ``chat_id`` is not a foreign
    key: a chat is created by its first message, and its files are uploaded before it.
    Deleting the chat deletes them (``services.delete_session``).
    """

    class Kind(models.TextChoices):
        IMAGE = "image"
        PDF = "pdf"
        TEXT = "text"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments")
    chat_id = models.UUIDField(db_index=True)
    # The name the user gave it (shown, and offered on download); never part of a path.
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    media_type = models.CharField(max_length=100)
    file = models.FileField(storage=attachment_storage, max_length=300)
    size = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    # The start of a PDF's text (or a text file's), for the offline model and the admin.
    excerpt = models.CharField(max_length=300, blank=True, default="")
    # Estimated model tokens of the file as sent (images by their pixels, PDFs by page).
    tokens = models.PositiveIntegerField()
    # Referenced by a stored message: it is part of the history and can no longer be removed alone.
    sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "chat_id", "sent"], name="chat_attachment_pending")]

    def __str__(self) -> str:
        return self.name


class UsageRecord(models.Model):
    """One model call (a reply, a title, a summary) in the usage ledger.

    Written by ``chat.usage.ledger`` in the same transaction as what the call produced,
    keyed by ``key`` (run and step, for a reply) so that a write that is retried is never
    counted twice. The chat is kept as a bare id: deleting a chat does not erase what it
    cost.
    """

    class Kind(models.TextChoices):
        REPLY = "reply"
        TITLE = "title"
        SUMMARY = "summary"

    key = models.CharField(max_length=120, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    session_id = models.UUIDField(null=True, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model = models.CharField(max_length=100)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    # Millionths of a US dollar: integer sums are exact on every backend.
    cost_micros = models.BigIntegerField(default=0)
    # A quota applied to the user when the call was made.
    billed = models.BooleanField(default=False)
    # The call was cancelled or failed mid-reply: usage as far as it was known.
    partial = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["user", "created_at"], name="chat_usage_user_created"),
            models.Index(fields=["created_at"], name="chat_usage_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.model} ({self.key})"


class UsageLimit(models.Model):
    """An override of the default quotas (settings ``USAGE_QUOTA_*``) for one user or one
    group. An empty field inherits: a user's from their groups (the most generous of them),
    a group's from the defaults. See ``chat.usage.quotas``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="usage_limit"
    )
    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, null=True, blank=True, related_name="usage_limit")
    unlimited = models.BooleanField(default=False, help_text="No limit at all, whatever the defaults say.")
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    cost_per_day = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="US dollars."
    )
    cost_per_month = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="US dollars."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="chat_usage_limit_user_xor_group",
            )
        ]

    def __str__(self) -> str:
        return f"limits of {self.user or self.group}"


class Summary(models.Model):
    """The model's summary of a path's first messages, sent instead of them (issue 14).

    It covers messages ``first_sequence`` to ``last_sequence`` of the path that leads to
    message (``branch``, ``last_sequence``): a message fixes the whole path before it, so
    the summary holds for every leaf below that message, and for no other path (switching
    to another version of a message it covers leaves it behind). It is written once, when
    the chat is compacted, and sent byte for byte the same on every call until the next
    compaction, which folds it into the next summary (``previous``): the prompt's prefix,
    and so the provider's prompt cache, stays the same between compactions. What is
    stored is never rewritten; the UI and exports show both.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="summaries", db_index=False)
    branch = models.PositiveIntegerField()
    first_sequence = models.PositiveIntegerField(default=1)
    last_sequence = models.PositiveIntegerField()
    # The path's running token sum at ``last_sequence``: what the summary stands in for.
    last_cumulative = models.BigIntegerField()
    text = models.TextField()
    # The summary's size as sent (estimated like a message's), and the call that wrote it.
    tokens = models.PositiveIntegerField()
    model = models.CharField(max_length=100)
    usage = models.JSONField(null=True, blank=True)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["session", "branch", "last_sequence"], name="chat_summary_path")]
        verbose_name_plural = "summaries"

    def __str__(self) -> str:
        return f"{self.session_id} #{self.first_sequence}-{self.last_sequence} (branch {self.branch})"
