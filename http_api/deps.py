from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from stream_scorer.bootstrap import Services
from stream_scorer.core.scorer import Scorer


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_scorer(request: Request) -> Scorer:
    scorer: Scorer = request.app.state.services.scorer
    return scorer


ServicesDep = Annotated[Services, Depends(get_services)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
