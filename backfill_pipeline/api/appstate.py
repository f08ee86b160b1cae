"""What the API's endpoints share through the app: the BackfillService, built once."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .service import BackfillService


async def service_of(request: Request) -> BackfillService:
    """The app's BackfillService (built at startup, or at the first request without lifespan)."""
    state = request.app.state
    if getattr(state, "service", None) is None:
        # Only reached when the server runs without lifespan events; build it once.
        async with state.service_lock:
            if getattr(state, "service", None) is None:
                state.service = await run_in_threadpool(state.service_factory)
    return state.service
