"""The dashboard's routes under `<public URL>/dashboard`."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ..config import Settings
from ..services.context import ServiceContext
from ..services.processor import Processors
from .actions import Actions
from .assets import PREFIX
from .pages import Pages
from .web import Web


class Dashboard:
    def __init__(self, ctx: ServiceContext, settings: Settings, processors: Processors) -> None:
        self.web = Web(ctx, settings)
        self.pages = Pages(self.web)
        self.actions = Actions(self.web, self.pages, settings, processors)

    def routes(self) -> list[BaseRoute]:
        pages, actions = self.pages, self.actions
        game = "/dashboard/{game}/{mode}"
        get, post = ["GET"], ["POST"]
        return [
            Route(f"/dashboard{PREFIX}/{{name}}", self.web.assets.serve, methods=get),
            Route("/dashboard", pages.home, methods=get),
            Route("/dashboard/", pages.home, methods=get),
            Route("/dashboard/sign-in", actions.sign_in_form, methods=get),
            Route("/dashboard/sign-in", actions.sign_in, methods=post),
            Route("/dashboard/sign-out", actions.sign_out, methods=post),
            Route("/dashboard/switch", pages.switch, methods=get),
            Route("/dashboard/games", pages.games, methods=get),
            Route("/dashboard/games", actions.register_game, methods=post),
            Route(f"{game}/", pages.overview, methods=get),
            Route(f"{game}/sessions", pages.sessions, methods=get),
            Route(f"{game}/sessions/{{session_id}}", pages.session, methods=get),
            Route(f"{game}/sessions/{{session_id}}/refund", actions.refund, methods=post),
            Route(f"{game}/payments", pages.payments, methods=get),
            Route(f"{game}/disputes", pages.disputes, methods=get),
            Route(f"{game}/events", pages.events, methods=get),
            Route(f"{game}/events/{{event_id}}", pages.event, methods=get),
            Route(f"{game}/events/{{event_id}}/resend", actions.resend_event, methods=post),
            Route(f"{game}/players/{{user_id}}", pages.player, methods=get),
            Route(f"{game}/webhooks", pages.webhooks, methods=get),
            Route(f"{game}/webhooks", actions.add_endpoint, methods=post),
            Route(f"{game}/webhooks/{{endpoint_id}}", pages.endpoint, methods=get),
            Route(f"{game}/webhooks/{{endpoint_id}}/{{action}}", actions.endpoint_action, methods=post),
            Route(f"{game}/keys", pages.keys, methods=get),
            Route(f"{game}/keys/{{what}}", pages.confirm_key, methods=get),
            Route(f"{game}/keys/roll", actions.roll_key, methods=post),
            Route(f"{game}/keys/revoke", actions.revoke_key, methods=post),
            Route(f"{game}/audit", pages.audit_log, methods=get),
            Route(f"{game}/members", pages.members, methods=get),
            Route(f"{game}/members", actions.grant, methods=post),
            Route(f"{game}/members/remove", actions.revoke_member, methods=post),
        ]
