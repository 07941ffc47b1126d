from tests.support import Api, Game


def test_create_and_get_session(api: Api, game: Game) -> None:
    created = api.create_session(game.game_id)
    got = api.ok("PaymentService/GetSession", {"id": created["id"]})
    assert got["status"] == "pending"
    assert got["item"] == {"title": "50 Gold Coins", "price": 499, "currency": "USD"}
