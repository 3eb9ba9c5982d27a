import pytest
from django.db import connection
from django.db.models import F, Q, Subquery, IntegerField, ExpressionWrapper
from chat.models import ChatSession, Message
from chat.storage import database
from tests.factories import seed_history

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

def variants(sid):
    state = ChatSession.objects.filter(id=sid)
    def sub(field):
        return Subquery(state.values(field)[:1])
    total = sub("total_tokens")
    return {
        "join-two-sided": database.active_branch_rows(sid, database.budget_range(500), "cumulative_tokens"),
        "no-join": Message.objects.filter(session_id=sid, branch=sub("active_branch"))
          .filter(cumulative_tokens__gt=ExpressionWrapper(total - 500, output_field=IntegerField()), cumulative_tokens__lte=total)
          .order_by("cumulative_tokens").values(*database._FIELDS, _revision=sub("revision"), _branch=sub("active_branch"), _total=sub("total_tokens"), _last=sub("last_sequence")),
        "no-join-recent": Message.objects.filter(session_id=sid, branch=sub("active_branch"))
          .filter(sequence__gt=ExpressionWrapper(sub("last_sequence") - 40, output_field=IntegerField()), sequence__lte=sub("last_sequence"))
          .order_by("sequence").values(*database._FIELDS, _revision=sub("revision")),
    }

def show(sid, tag):
    for name, qs in variants(sid).items():
        plan = qs.explain(analyze=True)
        print("=====", tag, name)
        print(plan)

def test_plans(owner):
    others = [seed_history(owner, 30) for i in range(100)]
    with connection.cursor() as c:
        c.execute("ANALYZE chat_message")
    s = seed_history(owner, 20000)  # grown after the statistics were taken
    show(s.pk, "STALE")
    with connection.cursor() as c:
        c.execute("ANALYZE chat_message")
    show(s.pk, "ANALYZED")
