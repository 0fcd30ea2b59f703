"""The OpenAPI document and its Swagger UI page, served with local assets (swagger-ui-dist from
npm, installed by ``deploy/setup/npm.sh`` like ECharts), so the page works with no Internet.

``/api/openapi.json`` and ``/api/docs`` (``/openapi.json`` and ``/docs`` redirect there) answer
without a key as the ``keyless_ops`` setting allows (:mod:`api.keyless`); the static assets are
public files of an open-source package and answer to anyone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

from api.keyless import docs_access

router = APIRouter(include_in_schema=False)

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
ASSETS = f"{DOCS_URL}/vendor"
VENDOR = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# No validator badge: Swagger UI would otherwise send the document to validator.swagger.io.
UI_PARAMETERS = {"validatorUrl": None, "deepLinking": True, "showExtensions": True, "showCommonExtensions": True}


@router.get(OPENAPI_URL, dependencies=[Depends(docs_access)])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get(DOCS_URL, dependencies=[Depends(docs_access)])
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=OPENAPI_URL, title=f"{request.app.title} — docs",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon-32x32.png", swagger_ui_parameters=UI_PARAMETERS)


@router.get(f"{ASSETS}/{{name}}")
async def asset(request: Request, name: str) -> FileResponse:
    if name not in VENDOR:
        raise HTTPException(404, "no such file")
    path = request.app.state.ctx.settings.node_modules / "swagger-ui-dist" / name
    if not path.is_file():
        raise HTTPException(503, "swagger-ui-dist is not installed: run `make setup-npm` (npm ci at the repository root)")
    return FileResponse(path, media_type=VENDOR[name], headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs")
async def docs_moved() -> RedirectResponse:
    return RedirectResponse(DOCS_URL, status_code=308)


@router.get("/openapi.json")
async def openapi_moved() -> RedirectResponse:
    return RedirectResponse(OPENAPI_URL, status_code=308)
