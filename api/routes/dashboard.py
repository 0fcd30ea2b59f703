"""The monitoring-centre dashboard: static assets of this package and ECharts from npm, served
locally (never from a CDN). `deploy/setup/npm.sh` installs echarts into the repository's
node_modules; the map of Jiangxi's cities ships with echarts 4.9.0."""

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static"
VENDOR = {
    "echarts.min.js": ("echarts/dist/echarts.min.js", "application/javascript"),
    "jiangxi.json": ("echarts/map/json/province/jiangxi.json", "application/json"),
}
PAGES = {"index.html": "text/html; charset=utf-8", "app.js": "application/javascript; charset=utf-8",
         "app.css": "text/css; charset=utf-8"}


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


@router.get("/dashboard/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=PAGES["index.html"], headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/{name}")
async def asset(name: str) -> FileResponse:
    if name not in PAGES:
        raise HTTPException(404, "no such file")
    return FileResponse(STATIC / name, media_type=PAGES[name], headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/vendor/{name}")
async def vendor(request: Request, name: str) -> FileResponse:
    if name not in VENDOR:
        raise HTTPException(404, "no such file")
    rel, media = VENDOR[name]
    path = request.app.state.ctx.settings.node_modules / rel
    if not path.is_file():
        raise HTTPException(503, f"{rel} is not installed: run `make setup-npm` (npm install at the repository root)")
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=86400"})
