"""The demo's API under ``/api``: a view and a CSV export action per collection.

Every route sits behind the guard; a handler only ever reads the principal the guard verified
and serves that user's rows. Answers are ``no-store``: an export is personal data.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sessionkeeper.demo.data import dataset_for, to_csv
from sessionkeeper.guard import principal_of

NO_STORE = {"Cache-Control": "no-store"}

#: The collections and the columns their list view and CSV export carry.
COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": ("id", "title", "customer", "contact", "status", "due", "value", "owner"),
    "contacts": ("id", "name", "company", "email", "phone", "city", "owner"),
    "reports": ("id", "name", "period", "owner"),
}


def _user_id(request: Request) -> str:
    principal = principal_of(request)
    if principal is None:  # unreachable behind the guard; refuse rather than serve anyone
        raise LookupError("no principal")
    return principal.user_id


def _not_found(what: str) -> Response:
    return JSONResponse({"error": "not_found", "message": f"no such {what}"}, 404, NO_STORE)


def _summary(collection: str, row: dict[str, Any]) -> dict[str, Any]:
    return {c: row[c] for c in COLUMNS[collection]}


def _rows(request: Request, collection: str) -> tuple[dict[str, Any], ...]:
    return dataset_for(_user_id(request)).collection(collection)


def _csv(text: str, filename: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _collection_routes(collection: str) -> list[Route]:
    """List (``GET /jobs``), view (``GET /jobs/J-1001``), export (``GET /jobs/export.csv``)."""

    async def list_rows(request: Request) -> Response:
        rows = _rows(request, collection)
        items = [_summary(collection, r) for r in rows]
        return JSONResponse({"items": items, "count": len(items)}, headers=NO_STORE)

    async def view_row(request: Request) -> Response:
        row_id = request.path_params["row_id"]
        row = next((r for r in _rows(request, collection) if r["id"] == row_id), None)
        return _not_found(collection[:-1]) if row is None else JSONResponse(row, headers=NO_STORE)

    async def export_rows(request: Request) -> Response:
        text = to_csv(_rows(request, collection), COLUMNS[collection])
        return _csv(text, f"{collection}.csv")

    return [
        Route(f"/{collection}", list_rows, methods=["GET"]),
        Route(f"/{collection}/export.csv", export_rows, methods=["GET"]),
        Route(f"/{collection}/{{row_id:str}}", view_row, methods=["GET"]),
    ]


async def export_report(request: Request) -> Response:
    """One report's rows as CSV (the list export has the reports, this has their figures)."""
    row_id = request.path_params["row_id"]
    report = next((r for r in _rows(request, "reports") if r["id"] == row_id), None)
    if report is None:
        return _not_found("report")
    rows = [{**row, "report": report["name"], "owner": report["owner"]} for row in report["rows"]]
    return _csv(to_csv(rows, ("report", "label", "value", "owner")), f"report-{report['id']}.csv")


def api_routes() -> list[Route]:
    """Routes relative to ``/api`` (the guard protects the whole prefix)."""
    routes = [Route("/reports/{row_id:str}/export.csv", export_report, methods=["GET"])]
    for collection in COLUMNS:
        routes += _collection_routes(collection)
    return routes
