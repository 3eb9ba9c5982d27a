"""Who may open a chat socket and hear a chat's events, through real daphne sockets: a
socket opened before its chat exists, ids in other spellings, origins of other apps."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chat.models import ChatSession
from tests.live import DaphneServer, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 20
TRUSTED = "https://chat.example.com"


@pytest.fixture(scope="module")
def server(django_db_setup):
    with DaphneServer(env={"CSRF_TRUSTED_ORIGINS": TRUSTED, "KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}"}) as live:
        yield live


@pytest.fixture
async def cookies(owner, stranger):
    return await sync_to_async(session_cookie)(owner), await sync_to_async(session_cookie)(stranger)


def socket(server, path, cookie, origin=None):
    return ws_connect(
        f"{server.ws_url}{path}",
        additional_headers={"Cookie": f"sessionid={cookie}", "Origin": origin or server.url},
        compression=None,
        proxy=None,
        open_timeout=TIMEOUT,
    )


async def frames_until(ws, predicate):
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        frames.append(frame)
        if predicate(frame):
            return frames


async def test_a_socket_opened_on_an_id_before_its_chat_exists_never_hears_the_owner_who_claims_it(server, cookies):
    mine, theirs = cookies
    sid = uuid.uuid4()
    async with socket(server, f"/ws/chat/{sid}/", theirs) as early:
        assert json.loads(await early.recv())["type"] == "ready"
        async with socket(server, f"/ws/chat/{sid}/", mine) as owner:
            assert json.loads(await owner.recv())["type"] == "ready"
            await owner.send(json.dumps({"type": "user_message", "text": "my secret plan"}))
            owned = await frames_until(owner, lambda f: f["type"] == "complete")
            assert any(f["type"] == "text_delta" for f in owned)
        # Everything the owner was sent is in the log by now; the early socket asks for
        # all of it, then for a reply that ends what it is sent.
        await early.send(json.dumps({"type": "resume", "after": 0}))
        await early.send(json.dumps({"type": "teleport"}))
        heard = await frames_until(early, lambda f: f.get("code") == "unknown_type")
        assert heard == [heard[-1]], heard
        # Nor can it act on the chat, which is not its user's.
        await early.send(json.dumps({"type": "user_message", "text": "let me in"}))
        refused = await frames_until(early, lambda f: f["type"] == "error")
        assert refused[-1]["code"] == "not_found"
    session = await ChatSession.objects.select_related("owner").aget(pk=sid)
    assert session.owner.username == "owner" and session.message_count >= 2


@pytest.mark.parametrize(
    "spelling",
    [
        lambda u: str(u).upper(),
        lambda u: u.hex,
        lambda u: "{%s}" % u,
        lambda u: u.urn,
        lambda u: " %s" % u,
    ],
    ids=["upper-case", "32-hex", "braces", "urn", "leading-space"],
)
async def test_a_chat_id_in_any_spelling_but_the_canonical_one_is_refused_with_4404(server, cookies, spelling):
    mine, _ = cookies
    sid = uuid.uuid4()
    async with socket(server, f"/ws/chat/{sid}/", mine) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "user_message", "text": "hello"}))
        await frames_until(ws, lambda f: f["type"] == "complete")
    async with socket(server, f"/ws/chat/{spelling(sid)}/".replace(" ", "%20"), mine) as other:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(other.recv(), TIMEOUT)
    assert closed.value.rcvd.code == 4404


@pytest.mark.parametrize(
    "origin, accepted",
    [
        (lambda s: s.url, True),
        (lambda s: f"http://localhost:{s.port}", False),  # the host header says 127.0.0.1
        (lambda s: "http://127.0.0.1:9999", False),  # another app on another port
        (lambda s: f"https://127.0.0.1:{s.port}", False),  # another scheme
        (lambda s: "http://127.0.0.1", False),
        (lambda s: "https://evil.example", False),
        (lambda s: "null", False),
        (lambda s: TRUSTED, True),  # CSRF_TRUSTED_ORIGINS
        (lambda s: "https://evil.chat.example.com", False),
    ],
    ids=["own", "other-host-name", "other-port", "other-scheme", "no-port", "other-site", "null", "trusted", "trusted-subdomain"],
)
async def test_only_the_sites_own_origin_and_trusted_origins_may_open_a_socket(server, cookies, origin, accepted):
    mine, _ = cookies
    attempt = socket(server, f"/ws/chat/{uuid.uuid4()}/", mine, origin=origin(server))
    if accepted:
        async with attempt as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
    else:
        with pytest.raises(InvalidStatus) as refused:
            async with attempt:
                pass
        assert refused.value.response.status_code == 403
