"""The API (issue 5): REST, live feeds (WebSocket / SSE), the dashboard, scoped API keys.

Wiring (the service): build an :class:`ApiContext`, call :func:`create_app`, run it with uvicorn
in the service's TaskGroup, and call ``reading_hub.publish(batch)`` for every decoded batch.
"""

from api.app import create_app
from api.context import ApiContext, ApiSettings
from api.keys import ApiKey, create_key, revoke_key
from api.live import ReadingHub
from api.scope import Scope, ScopeError

__all__ = [
    "ApiContext",
    "ApiKey",
    "ApiSettings",
    "ReadingHub",
    "Scope",
    "ScopeError",
    "create_app",
    "create_key",
    "revoke_key",
]
