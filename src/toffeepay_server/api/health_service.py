"""pay.v1.HealthService: answers without touching the database."""

from __future__ import annotations

from typing import Any

from toffeepay._proto.pay.v1 import health_pb as pb


class HealthService:
    async def check(self, request: pb.CheckRequest, ctx: Any, /) -> pb.CheckResponse:
        return pb.CheckResponse(status="serving")
