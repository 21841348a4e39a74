from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

# The getters are ``async def``: FastAPI runs plain ``def`` dependencies in a thread pool, a thread hop per
# request that cost a fifth of the API's CPU in a profile.
from http_api.coalescer import Coalescer
from schemas.decisions import FraudDecision, PersonalizationDecision
from schemas.events import SessionEvent, TransactionEvent
from stream_scorer.bootstrap import Services
from stream_scorer.core.identified import Identified
from stream_scorer.core.scorer import Scorer, Timings


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_scorer(request: Request) -> Scorer:
    scorer: Scorer = request.app.state.services.scorer
    return scorer


@dataclass(frozen=True)
class Coalescers:
    """Per-process micro-batchers in front of the scorer (see ``coalescer``)."""

    fraud: Coalescer[Identified[TransactionEvent], tuple[FraudDecision, Timings]]
    personalization: Coalescer[Identified[SessionEvent], tuple[PersonalizationDecision, Timings]]

    @classmethod
    def build(cls, services: Services) -> Coalescers:
        scorer = services.scorer
        allow_degraded = services.settings.api.redis_down_status == 200

        async def fraud(items: Sequence[Identified[TransactionEvent]]) -> list[tuple[FraudDecision, Timings]]:
            timings: Timings = {}
            decisions = await scorer.score_transactions(items, allow_degraded=allow_degraded, timings=timings)
            return [(d, timings) for d in decisions]

        async def personalization(items: Sequence[Identified[SessionEvent]]
                                  ) -> list[tuple[PersonalizationDecision, Timings]]:
            timings: Timings = {}
            decisions = await scorer.score_session_events(items, allow_degraded=allow_degraded, timings=timings)
            return [(d, timings) for d in decisions]

        return cls(Coalescer(fraud), Coalescer(personalization))

    async def aclose(self) -> None:
        await self.fraud.aclose()
        await self.personalization.aclose()


async def get_coalescers(request: Request) -> Coalescers:
    coalescers: Coalescers = request.app.state.coalescers
    return coalescers


ServicesDep = Annotated[Services, Depends(get_services)]
CoalescersDep = Annotated[Coalescers, Depends(get_coalescers)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
