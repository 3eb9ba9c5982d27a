"""The Django admin: pages render for staff, everything is read-only, the actions work."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from chat.models import ChatSession, LoopState, Message
from chat.storage import database, tree
from tests.factories import make_artifact, pause_on_question, seed_history, seed_messages, tool_turn

pytestmark = [pytest.mark.django_db]


def changelist(model: str) -> str:
    return reverse(f"admin:chat_{model}_changelist")


def change(model: str, pk) -> str:
    return reverse(f"admin:chat_{model}_change", args=[pk])


@pytest.fixture
def paused(owner):
    return pause_on_question(owner)


@pytest.fixture
def chat(owner):
    session = seed_messages(owner, tool_turn("toolu_1"), title="Sums <script>")
    Message.objects.filter(session=session, sequence=4).update(
        usage={"input_tokens": 11, "output_tokens": 7}, context={"first_sequence": 1, "last_sequence": 3, "dropped": 0}
    )
    return session


@pytest.fixture
def artifact(chat):
    return make_artifact(chat, title="Plan", content="# v2 <b>", versions=("# v1",))


@pytest.mark.parametrize("model", ["chatsession", "loopstate", "artifact", "summary"])
def test_changelists_render_for_staff(admin_client, chat, paused, artifact, model):
    response = admin_client.get(changelist(model))
    assert response.status_code == 200


def test_session_list_shows_the_columns_and_filters(admin_client, chat, paused, stranger):
    seed_history(stranger, 1)
    html = admin_client.get(changelist("chatsession")).content.decode()
    for column in ("owner", "state", "message count", "total tokens", "updated at"):
        assert column in html.lower()
    assert "Sums &lt;script&gt;" in html
    assert "?state__exact=awaiting_input" in html
    assert f"?owner__id__exact={chat.owner_id}" in html
    assert f"?owner__id__exact={stranger.pk}" in html


def test_sessions_filter_by_state(admin_client, chat, paused):
    response = admin_client.get(changelist("chatsession"), {"state__exact": "awaiting_input"})
    assert [s.pk for s in response.context["cl"].result_list] == [paused.pk]


def test_sessions_filter_by_owner(admin_client, chat, stranger):
    theirs = seed_history(stranger, 1)
    response = admin_client.get(changelist("chatsession"), {"owner__id__exact": stranger.pk})
    assert [s.pk for s in response.context["cl"].result_list] == [theirs.pk]


@pytest.mark.parametrize("term", ["sums", "SUMS <"])
def test_sessions_search_by_title(admin_client, chat, paused, term):
    response = admin_client.get(changelist("chatsession"), {"q": term})
    assert [s.pk for s in response.context["cl"].result_list] == [chat.pk]


def test_sessions_search_by_id(admin_client, chat, paused):
    response = admin_client.get(changelist("chatsession"), {"q": str(paused.pk)})
    assert [s.pk for s in response.context["cl"].result_list] == [paused.pk]


def test_session_page_shows_messages_in_order_readably_and_escaped(admin_client, chat):
    response = admin_client.get(change("chatsession", chat.pk))

    assert response.status_code == 200
    html = response.content.decode()
    rows = response.context["inline_admin_formsets"][1].formset.get_queryset()
    assert [m.sequence for m in rows] == [1, 2, 3, 4]
    assert "Sums &lt;script&gt;" in html and "Sums <script>" not in html
    # Content blocks as indented JSON, extra keys included.
    assert "&quot;type&quot;: &quot;tool_use&quot;" in html
    assert "&quot;display_data&quot;: {" in html
    # The reply's usage and context record.
    assert "&quot;output_tokens&quot;: 7" in html
    assert "&quot;first_sequence&quot;: 1" in html
    assert "Messages 1–4 of 4" in html


def test_session_page_is_read_only(admin_client, chat):
    html = admin_client.get(change("chatsession", chat.pk)).content.decode()
    assert 'name="_save"' not in html
    assert "<textarea" not in html and 'name="title"' not in html
    assert admin_client.post(change("chatsession", chat.pk), {"title": "changed"}).status_code == 403
    chat.refresh_from_db()
    assert chat.title == "Sums <script>"


def test_session_page_pages_through_a_long_history(admin_client, owner):
    session = seed_history(owner, 120)

    first = admin_client.get(change("chatsession", session.pk))
    middle = admin_client.get(change("chatsession", session.pk), {"messages_after": 50})
    last = admin_client.get(change("chatsession", session.pk), {"messages_after": 100})

    def shown(response):
        return [m.sequence for m in response.context["inline_admin_formsets"][1].formset.get_queryset()]

    assert shown(first) == list(range(1, 51))
    assert shown(middle) == list(range(51, 101))
    assert shown(last) == list(range(101, 121))
    assert "Messages 51–100 of 120" in middle.content.decode()
    assert "?messages_after=100#messages" in middle.content.decode()  # next
    assert "?messages_after=0#messages" in middle.content.decode()  # first/previous
    assert "previous</a>" not in first.content.decode()
    assert "next</a>" not in last.content.decode()


def test_session_page_shows_the_conversation_the_user_sees_after_an_edit(admin_client, owner):
    session = seed_history(owner, 60)
    branch = tree.fork(session.pk, 2)  # message 3 edited: the old 3..60 stay on branch 0
    database.save_messages(session.pk, [{"role": "user", "content": "edited"}, {"role": "assistant", "content": "again"}])

    response = admin_client.get(change("chatsession", session.pk))
    rows = response.context["inline_admin_formsets"][1].formset.get_queryset()
    assert [(m.sequence, m.branch) for m in rows] == [(1, 0), (2, 0), (3, branch), (4, branch)]
    html = response.content.decode()
    assert "Messages 1–4 of 4" in html and "edited" in html
    assert "active branch" in html.lower() and "branch count" in html.lower()


@pytest.mark.parametrize(("after", "shown"), [("x", [1, 2, 3, 4]), ("-5", [1, 2, 3, 4]), ("99999", [4])])
def test_a_bad_page_parameter_is_clamped(admin_client, chat, after, shown):
    response = admin_client.get(change("chatsession", chat.pk), {"messages_after": after})
    assert [m.sequence for m in response.context["inline_admin_formsets"][1].formset.get_queryset()] == shown


def test_session_page_shows_the_paused_question(admin_client, paused):
    html = admin_client.get(change("chatsession", paused.pk)).content.decode()
    assert "propose_options: Which colour?" in html


def test_loop_state_list_shows_session_tool_question_options_and_age(admin_client, paused):
    response = admin_client.get(changelist("loopstate"))
    html = response.content.decode()
    assert change("chatsession", paused.pk) in html
    assert "propose_options" in html and "Which colour?" in html
    assert "&quot;green&quot;" in html
    assert "minute" in html  # the age, as "0 minutes"


def test_a_loop_states_question_links_to_its_page(admin_client, paused):
    loop = LoopState.objects.get(session=paused)
    html = admin_client.get(changelist("loopstate")).content.decode()
    assert f'<a href="{change("loopstate", loop.pk)}">Which colour?</a>' in html


def test_loop_state_page_renders(admin_client, paused):
    loop = LoopState.objects.get(session=paused)
    html = admin_client.get(reverse("admin:chat_loopstate_change", args=[loop.pk])).content.decode()
    assert "toolu_choice" in html and "&quot;tool_use_id&quot;: &quot;toolu_calc&quot;" in html


def test_artifact_page_shows_content_escaped_and_earlier_versions(admin_client, artifact):
    response = admin_client.get(change("artifact", artifact.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "# v2 &lt;b&gt;" in html
    assert "# v1" in html


def test_artifacts_search_by_id(admin_client, artifact, chat):
    other = make_artifact(chat, title="Other")
    response = admin_client.get(changelist("artifact"), {"q": str(other.pk)})
    assert [a.pk for a in response.context["cl"].result_list] == [other.pk]


def test_tokens_can_be_made_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:authtoken_tokenproxy_add")).status_code == 200


def test_staff_who_may_only_view_get_no_actions(client, django_user_model, paused):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_", content_type__app_label="chat"))
    client.force_login(viewer)

    response = client.get(changelist("chatsession"))
    refused = client.post(
        changelist("chatsession"), {"action": "repair_sessions", "_selected_action": [str(paused.pk)]}
    )

    assert response.status_code == 200
    assert "repair_sessions" not in response.content.decode()
    assert refused.status_code in (200, 302)
    paused.refresh_from_db()
    assert paused.state == ChatSession.State.AWAITING_INPUT


@pytest.mark.django_db(transaction=True)
def test_repair_action_unsticks_the_selected_sessions(admin_client, paused, key_prefix):
    response = admin_client.post(
        changelist("chatsession"), {"action": "repair_sessions", "_selected_action": [str(paused.pk)]}, follow=True
    )

    assert "Repaired 1 of 1 session" in response.content.decode()
    paused.refresh_from_db()
    assert paused.state == ChatSession.State.IDLE
    assert not LoopState.objects.exists()
    assert Message.objects.filter(session=paused).count() == 3


@pytest.mark.django_db(transaction=True)
def test_clear_loop_state_action_repairs_the_session(admin_client, paused, key_prefix):
    loop = LoopState.objects.get(session=paused)
    admin_client.post(changelist("loopstate"), {"action": "clear_loop_states", "_selected_action": [str(loop.pk)]})

    paused.refresh_from_db()
    assert paused.state == ChatSession.State.IDLE
    assert not LoopState.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_drop_cache_action_empties_the_entries(admin_client, chat, key_prefix):
    from asgiref.sync import async_to_sync

    from chat import runtime

    storage = runtime.get().storage
    async_to_sync(storage.load_recent_messages)(chat.pk, 10)

    response = admin_client.post(
        changelist("chatsession"), {"action": "drop_cache", "_selected_action": [str(chat.pk)]}, follow=True
    )

    assert "Dropped the cache entries of 1 session" in response.content.decode()
    assert async_to_sync(storage.cache.read_recent)(str(chat.pk), 4) is None


def test_a_sessions_summaries_are_shown_on_its_page_and_their_own(admin_client, chat):
    from chat.models import Summary

    summary = Summary.objects.create(
        session=chat, branch=0, last_sequence=2, last_cumulative=30, text="Earlier: <b>sums</b>", tokens=9, model="offline-demo"
    )
    html = admin_client.get(change("chatsession", chat.pk)).content.decode()
    assert "messages 1–2 of the path through branch 0" in html and "offline-demo" in html
    page = admin_client.get(change("summary", summary.pk)).content.decode()
    assert "Earlier: &lt;b&gt;sums&lt;/b&gt;" in page and "<b>sums</b>" not in page
    assert "name=\"_save\"" not in page  # read-only
