"""The generated Connect client, in binary protobuf, against a real server."""

from __future__ import annotations

import pytest
from connectrpc.code import Code
from connectrpc.codec import proto_binary_codec
from connectrpc.errors import ConnectError
from toffeepay._proto.pay.v1 import payment_pb as pb
from toffeepay._proto.pay.v1 import resources_pb as rpb
from toffeepay._proto.pay.v1.payment_connect import PaymentServiceClient, PaymentServiceClientSync

from tests.support import Game, Server, png_data_url


def client(server: Server) -> PaymentServiceClientSync:
    return PaymentServiceClientSync(server.url, codec=proto_binary_codec(), send_compression=None)


def test_binary_create_get_list_cancel(server: Server, game: Game) -> None:
    auth = {"authorization": f"Bearer {game.sandbox_key}"}
    with client(server) as c:
        created = c.create_session(
            pb.CreateSessionRequest(
                game_id=game.game_id,
                user_id="player_42",
                item=rpb.Item(title="50 Gold Coins", price=499, currency="USD", image=png_data_url()),
                return_url="mygame://payment-complete",
                metadata={"sku": "gold_50"},
            ),
            headers=auth,
        )
        assert created.id.startswith("sess_") and created.session_id == created.id
        session = c.get_session(pb.GetSessionRequest(id=created.id), headers=auth)
        assert session.status == "pending"
        assert session.item.price == 499 and session.metadata == {"sku": "gold_50"}
        assert not session.has_field("payment_id")
        assert session.expires_at.to_datetime() > session.created_at.to_datetime()
        listed = c.list_sessions(pb.ListSessionsRequest(limit=10), headers=auth)
        assert [s.id for s in listed.sessions] == [created.id] and listed.total == 1 and not listed.has_more
        c.cancel_session(pb.CancelSessionRequest(session_id=created.id), headers=auth)
        status = c.get_session_status(pb.GetSessionStatusRequest(id=created.id), headers=auth)
        assert status.status == "cancelled"


def test_binary_errors_carry_codes_and_reasons(server: Server, game: Game) -> None:
    auth = {"authorization": f"Bearer {game.sandbox_key}"}
    with client(server) as c:
        with pytest.raises(ConnectError) as bad_price:
            c.create_session(
                pb.CreateSessionRequest(
                    game_id=game.game_id, user_id="p", item=rpb.Item(title="x", price=0, currency="USD")
                ),
                headers=auth,
            )
        assert bad_price.value.code == Code.INVALID_ARGUMENT
        assert bad_price.value.message.startswith("invalid_price: ")
        with pytest.raises(ConnectError) as unauth:
            c.get_session(pb.GetSessionRequest(id="sess_x"), headers={"authorization": "Bearer sk_test_nope"})
        assert unauth.value.code == Code.UNAUTHENTICATED
        with pytest.raises(ConnectError) as other_game:
            c.list_sessions(pb.ListSessionsRequest(game_id="someone_else"), headers=auth)
        assert other_game.value.code == Code.PERMISSION_DENIED
        assert other_game.value.message.startswith("invalid_game_id: ")


async def test_async_client_and_get_requests(server: Server, game: Game) -> None:
    auth = {"authorization": f"Bearer {game.sandbox_key}"}
    async with PaymentServiceClient(server.url, codec=proto_binary_codec()) as c:
        created = await c.create_session(
            pb.CreateSessionRequest(
                game_id=game.game_id, user_id="p", item=rpb.Item(title="x", price=5, currency="JPY")
            ),
            headers=auth,
        )
        status = await c.get_session_status(pb.GetSessionStatusRequest(id=created.id), headers=auth, use_get=True)
        assert status.status == "pending"
