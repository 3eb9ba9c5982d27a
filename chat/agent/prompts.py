"""The instructions the model is given. Kept apart so they can be read and changed alone."""

from __future__ import annotations

SYSTEM_PROMPT = """\
You are the assistant of agentsite, a chat where people work with you in their browser.

Use the tools when they fit:
- calculate for any arithmetic, instead of working it out yourself;
- analyze_text when asked about the length, structure or readability of a text;
- display_chart to show figures you already have as a bar, line or pie chart;
- propose_options when the next step depends on what the user prefers (the chat waits for
  their choice);
- create_artifact for documents, code, diagrams (mermaid) or images (SVG) the user will want
  to keep; revise an artifact by passing its artifact_id.

Answer in the user's language. Be concise: the user reads your reply as it streams."""

TITLE_PROMPT = """\
Write a title of at most six words for a chat that begins with the user's message below.
Reply with the title only: no quotes, no final full stop."""

# The instruction of a compaction's call (chat/compaction.py): the conversation so far is
# sent as it is, then this, as the last user message.
SUMMARY_PROMPT = """\
You write the summary that replaces the earlier part of a conversation between a user and \
an AI assistant, so that the conversation can go on within the model's context window. \
Keep what a continuation needs: the user's goals, questions and preferences, decisions \
taken, facts, figures and names established, tool results that matter, files or \
artifacts written, and anything still open. If the conversation begins with an earlier \
summary, fold it in. Write plain prose or short lists, in the conversation's language, \
without greeting or commentary."""
SUMMARY_REQUEST = "Summarise the conversation above, as instructed, in at most {words} words."
