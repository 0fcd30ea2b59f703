"""Live feeds: readings and alert events over WebSocket (``/api/v1/live/ws``) and SSE
(``/api/v1/live/sse``), filtered by the key's scope and a subscription.

Subscription (query parameters, repeatable): ``sensor`` (dense ids), ``enterprise``, ``region``
(GB/T 2260, its subregions included), ``grade`` (alert colours), and ``readings`` / ``alerts``
(true/false). The sensors are resolved once, in SQL within the key's scope, when the client
connects (sensors registered later need a reconnect); with no sensor, enterprise or region given,
every sensor in scope (at most ``live_max_sensors``). Alert events are filtered in process against
the scope (the registry's region tree) and the subscription.

Authentication: ``POST /api/v1/live/ticket`` with the key in a header gives a one-use ticket,
valid 30 s, passed as ``?ticket=`` (the key itself never goes in a URL: URLs are logged).

Each client has a bounded queue. One that falls behind is told why and disconnected: WebSocket
close code 4408 with the reason, or an SSE ``closed`` event. Other close codes: 4401 no valid
ticket, 4403 the key was revoked (within 10 s of it), 4422 a bad subscription, 4429 the key's rate
limit or its cap on live sessions (``api.sessions``).
"""

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from alerts.colours import Colour
from api.auth import check_rate, redeem_ticket, require_key, require_ticket
from api.keys import ApiKey
from api.live import Closed, ReadingClient
from api.sessions import CHECK_S, LiveSessions, TooManySessions
from store.registry_records.scoped import active_sensor_ids

router = APIRouter(prefix="/api/v1/live", tags=["live"])

CLOSE_NO_KEY = 4401
CLOSE_REVOKED = 4403
KEY_REVOKED = "the key was revoked"
CLOSE_BAD_SUBSCRIPTION = 4422
CLOSE_FELL_BEHIND = 4408
CLOSE_RATE_LIMITED = 4429
SEND_TIMEOUT_S = 10.0
ALERTS_FELL_BEHIND = "fell behind: alert queue full; reconnect and reload"


class BadSubscription(ValueError):
    pass


class Subscription:
    def __init__(self, sensors: list[int], enterprises: list[str], regions: list[str], grades: list[str],
                 readings: bool, alerts: bool) -> None:
        if any(not 0 < s < 2**31 for s in sensors):
            raise BadSubscription("sensor ids are positive 32-bit integers")
        if any(len(e) > 64 for e in enterprises) or any(not (len(r) == 6 and r.isdigit()) for r in regions):
            raise BadSubscription("enterprise ids have at most 64 characters; regions are 6-digit codes")
        try:
            self.grades = {Colour.parse(g).id for g in grades}
        except ValueError as exc:
            raise BadSubscription(str(exc)) from None
        self.sensors, self.enterprises, self.regions = sensors, enterprises, regions
        self.readings, self.alerts = readings, alerts

    @classmethod
    def from_query(cls, params) -> "Subscription":
        def flag(name: str) -> bool:
            v = params.get(name, "true").lower()
            if v not in ("true", "false", "1", "0"):
                raise BadSubscription(f"{name} is true or false")
            return v in ("true", "1")

        try:
            sensors = [int(s) for s in params.getlist("sensor")]
        except ValueError:
            raise BadSubscription("sensor ids are integers") from None
        return cls(sensors, params.getlist("enterprise"), params.getlist("region"), params.getlist("grade"),
                   flag("readings"), flag("alerts"))


async def _sensors(ctx, key: ApiKey, sub: Subscription) -> list[int]:
    cap = ctx.settings.live_max_sensors
    async with ctx.pool.acquire(timeout=10) as conn:
        ids = await active_sensor_ids(conn, key.scope.enterprise_sql, sensors=sub.sensors,
                                      enterprises=sub.enterprises, regions=sub.regions, limit=cap + 1)
    if len(ids) > cap:
        raise BadSubscription(f"more than {cap} sensors; subscribe to fewer (sensor, enterprise, region)")
    return ids


def _alert_filter(ctx, key: ApiKey, sub: Subscription):
    scope = key.scope
    filtered = bool(sub.enterprises or sub.regions or sub.sensors)
    sensor_keys = {f"sensor:{s}:" for s in sub.sensors}

    def chain(region: str | None) -> tuple[str, ...]:
        regions = ctx.registry().regions
        out: list[str] = []
        while region and region not in out:
            out.append(region)
            info = regions.get(region)
            region = info.parent if info else None
        return tuple(out)

    def accept(event: dict[str, Any]) -> bool:
        alert = (event.get("detail") or {}).get("alert") or {}
        enterprise = event.get("enterprise") or alert.get("enterprise")
        if enterprise is None:  # silences and other province-wide events
            return scope.province and not filtered and not sub.grades
        region = alert.get("region")
        if region is None:
            info = ctx.registry().enterprises.get(enterprise)
            region = info.region if info else None
        regions = chain(region)
        if scope.kind == "enterprise":
            if enterprise != scope.id:
                return False
        elif not scope.covers_region(region or "", regions):
            return False
        if sub.grades and alert.get("grade") not in sub.grades:
            return False
        if filtered:
            key_text = str(event.get("alert_key") or "")
            return (enterprise in sub.enterprises or any(r in regions for r in sub.regions)
                    or any(key_text.startswith(k) for k in sensor_keys)
                    or any(s in sub.sensors for s in alert.get("sensors") or ()))  # an incident's sensors
        return True

    return accept


class LiveSession:
    """A client's readings queue and alert subscription, read as one stream of JSON texts.

    Both queues wake one event, so waiting for the next message costs one future, not a task per
    queue and an ``asyncio.wait`` per message (which took a fifth of the event loop with 500
    clients at full ingest)."""

    def __init__(self, readings: ReadingClient | None, alerts) -> None:
        self.readings = readings
        self.alerts = alerts
        self._ready = asyncio.Event()
        self._stopped = False
        for source in (readings, alerts):
            if source is not None:
                source.wake = self._ready.set

    def stop(self) -> None:
        """Wake :meth:`next` at once (the client went away)."""
        self._stopped = True
        self._ready.set()

    def _take(self) -> str | Closed | None:
        if self.alerts is not None and not self.alerts.queue.empty():  # alerts first: they matter most
            item = self.alerts.queue.get_nowait()
            if item.get("type") == "closed":
                return Closed(ALERTS_FELL_BEHIND)
            return json.dumps(item, ensure_ascii=False, default=str)
        if self.readings is not None and not self.readings.queue.empty():
            item = self.readings.queue.get_nowait()
            return item if isinstance(item, Closed) else item.decode()
        return None

    async def next(self, timeout_s: float) -> str | Closed | None:
        """The next message, a :class:`Closed` when the client was dropped, None on timeout."""
        while True:
            if self._stopped:
                return Closed("client went away")
            item = self._take()
            if item is not None:
                return item
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout_s):
                    await self._ready.wait()
            except TimeoutError:
                return None

    def close(self) -> None:
        if self.readings is not None:
            self.readings.close()
        if self.alerts is not None:
            self.alerts.close()


async def open_session(ctx, key: ApiKey, sub: Subscription) -> tuple[LiveSession, dict[str, Any]]:
    readings = None
    sensors: list[int] = []
    if sub.readings:
        sensors = await _sensors(ctx, key, sub)
        readings = ctx.reading_hub.subscribe(sensors, maxsize=ctx.settings.live_queue)
    alerts = None
    if sub.alerts and ctx.alert_feed is not None:
        alerts = ctx.alert_feed.subscribe(_alert_filter(ctx, key, sub), maxsize=ctx.settings.live_queue)
    hello = {"type": "subscribed", "scope": str(key.scope), "sensors": sensors,
             "alerts": alerts is not None, "grades": sorted(sub.grades)}
    return LiveSession(readings, alerts), hello


@router.post("/ticket", summary="A one-use ticket (30 s) for the live feeds: ?ticket= on /ws or /sse",
             dependencies=[Depends(require_key)])
async def live_ticket(request: Request) -> dict[str, Any]:
    key: ApiKey = request.state.key
    return {"ticket": request.app.state.tickets.issue(key.digest), "expires_in_s": request.app.state.tickets.ttl_s}


@router.websocket("/ws")
async def live_ws(websocket: WebSocket) -> None:
    ctx = websocket.app.state.ctx
    sessions: LiveSessions = websocket.app.state.live_sessions
    await websocket.accept()
    key = await redeem_ticket(websocket)
    if key is None:
        await websocket.close(CLOSE_NO_KEY, "a live-feed ticket is needed (?ticket=, POST /api/v1/live/ticket)")
        return
    try:
        check_rate(websocket, key)
        sub = Subscription.from_query(websocket.query_params)
        with sessions.hold(key):
            session, hello = await open_session(ctx, key, sub)
            try:
                await _serve_ws(websocket, session, hello, key, sessions, ctx.settings.live_heartbeat_s)
            finally:
                session.close()
    except (HTTPException, TooManySessions) as exc:
        await websocket.close(CLOSE_RATE_LIMITED, str(getattr(exc, "detail", exc))[:120])
    except BadSubscription as exc:
        await websocket.close(CLOSE_BAD_SUBSCRIPTION, str(exc)[:120])


async def _serve_ws(websocket: WebSocket, session: "LiveSession", hello: dict, key: ApiKey,
                    sessions: LiveSessions, heartbeat_s: float) -> None:
    try:
        await websocket.send_text(json.dumps(hello))
        async with asyncio.TaskGroup() as tg:
            listener = tg.create_task(_until_disconnect(websocket, session))
            while not listener.done():
                item = await session.next(min(heartbeat_s, CHECK_S))
                if not await sessions.valid(key):
                    item = Closed(KEY_REVOKED)
                    code = CLOSE_REVOKED
                else:
                    code = CLOSE_FELL_BEHIND
                if isinstance(item, Closed):
                    if not listener.done():
                        listener.cancel()
                        await websocket.close(code, item.reason[:120])
                    break
                if item is not None:
                    async with asyncio.timeout(SEND_TIMEOUT_S):
                        await websocket.send_text(item)
    except* (WebSocketDisconnect, TimeoutError, RuntimeError):
        pass  # the client went away, or stopped reading for SEND_TIMEOUT_S


async def _until_disconnect(websocket: WebSocket, session: LiveSession) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            session.stop()
            return


@router.get("/sse", summary="Server-sent events: readings and alert events (see the WebSocket for filters)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}, 422: {"description": "bad subscription"}})
async def live_sse(
    request: Request, key: Annotated[ApiKey, Depends(require_ticket)],
    sensor: Annotated[list[int] | None, Query()] = None,
    enterprise: Annotated[list[str] | None, Query()] = None,
    region: Annotated[list[str] | None, Query()] = None,
    grade: Annotated[list[str] | None, Query()] = None,
    readings: bool = True, alerts: bool = True,
) -> StreamingResponse:
    ctx = request.app.state.ctx
    sessions: LiveSessions = request.app.state.live_sessions
    try:
        sub = Subscription(sensor or [], enterprise or [], region or [], grade or [], readings, alerts)
        held = sessions.hold(key)
        held.__enter__()
    except BadSubscription as exc:
        raise HTTPException(422, str(exc)) from None
    except TooManySessions as exc:
        raise HTTPException(429, str(exc)) from None
    try:
        session, hello = await open_session(ctx, key, sub)
    except BadSubscription as exc:
        held.__exit__(None, None, None)
        raise HTTPException(422, str(exc)) from None
    except BaseException:
        held.__exit__(None, None, None)
        raise

    async def stream():
        try:
            yield f"event: subscribed\ndata: {json.dumps(hello)}\n\n"
            while True:
                item = await session.next(min(ctx.settings.live_heartbeat_s, CHECK_S))
                if not await sessions.valid(key):
                    item = Closed(KEY_REVOKED)
                if isinstance(item, Closed):
                    yield f"event: closed\ndata: {json.dumps({'reason': item.reason})}\n\n"
                    return
                if item is None:
                    yield ": heartbeat\n\n"
                    continue
                kind = "readings" if item.startswith('{"type":"readings"') else "alert"
                yield f"event: {kind}\ndata: {item}\n\n"
        finally:
            session.close()
            held.__exit__(None, None, None)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
