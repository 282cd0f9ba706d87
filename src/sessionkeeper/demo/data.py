"""The demo's business data: jobs, contacts and reports, seeded per user from the user's id.

Seeded, not stored: the same user always sees the same rows, two users never see each other's,
and the demo needs no tables of its own. Each row carries ``owner`` (the user id) so a test can
check that an export holds the signed-in user's rows and nobody else's.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Radia",
    "Tim",
    "Katherine",
    "Dennis",
    "Hedy",
    "Niklaus",
    "Sophie",
    "Linus",
    "Joan",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Wirth",
    "Wilson",
)
_COMPANIES = (
    "Northwind",
    "Contoso",
    "Initech",
    "Globex",
    "Umbrella Logistics",
    "Stark Tools",
    "Wayne Freight",
    "Acme Parts",
    "Hooli",
    "Vandelay Imports",
    "Pied Piper",
    "Soylent",
)
_CITIES = (
    "Lisbon",
    "Lyon",
    "Leeds",
    "Ghent",
    "Bilbao",
    "Turin",
    "Porto",
    "Utrecht",
    "Graz",
    "Malmö",
    "Aarhus",
    "Kraków",
)
_JOB_KINDS = (
    "Boiler service",
    "Roof inspection",
    "Fit-out",
    "Network cabling",
    "Window repair",
    "Annual maintenance",
    "Electrical check",
    "Solar install",
    "Leak repair",
    "Heat-pump survey",
)
_STATUSES = ("scheduled", "in progress", "on hold", "done", "invoiced")
_REPORTS = (
    "Revenue by customer",
    "Jobs by status",
    "Overdue jobs",
    "Contacts by city",
    "Monthly completions",
    "Top customers",
)
_EPOCH = date(2026, 1, 5)


@dataclass(frozen=True)
class Dataset:
    jobs: tuple[dict[str, Any], ...]
    contacts: tuple[dict[str, Any], ...]
    reports: tuple[dict[str, Any], ...]

    def collection(self, name: str) -> tuple[dict[str, Any], ...]:
        rows: tuple[dict[str, Any], ...] = getattr(self, name)
        return rows


@lru_cache(maxsize=1024)
def dataset_for(user_id: str) -> Dataset:
    """The rows of one user (cached: the data is a pure function of the id)."""
    seed = int.from_bytes(hashlib.sha256(user_id.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    contacts = tuple(_contact(rng, user_id, i) for i in range(1, 15))
    jobs = tuple(_job(rng, user_id, i, contacts) for i in range(1, 19))
    reports = tuple(
        _report(rng, user_id, i, name, jobs, contacts) for i, name in enumerate(_REPORTS, start=1)
    )
    return Dataset(jobs=jobs, contacts=contacts, reports=reports)


def _contact(rng: random.Random, owner: str, n: int) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    company = rng.choice(_COMPANIES)
    domain = company.lower().replace(" ", "") + ".example"
    return {
        "id": f"C-{n:03d}",
        "name": f"{first} {last}",
        "company": company,
        "email": f"{first.lower()}.{last.lower().replace('-', '')}@{domain}",
        "phone": f"+44 20 7{rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
        "city": rng.choice(_CITIES),
        "owner": owner,
    }


def _job(
    rng: random.Random, owner: str, n: int, contacts: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    contact = rng.choice(contacts)
    due = _EPOCH + timedelta(days=rng.randrange(0, 300))
    return {
        "id": f"J-{1000 + n}",
        "title": rng.choice(_JOB_KINDS),
        "customer": contact["company"],
        "contact": contact["name"],
        "status": rng.choice(_STATUSES),
        "due": due.isoformat(),
        "value": round(rng.uniform(180, 9800), 2),
        "owner": owner,
    }


def _report(
    rng: random.Random,
    owner: str,
    n: int,
    name: str,
    jobs: Sequence[dict[str, Any]],
    contacts: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    rows: list[dict[str, Any]]
    if "customer" in name.lower():
        totals: dict[str, float] = {}
        for job in jobs:
            totals[job["customer"]] = totals.get(job["customer"], 0.0) + job["value"]
        rows = [{"label": k, "value": round(v, 2)} for k, v in sorted(totals.items())]
        if name.startswith("Top"):
            rows = sorted(rows, key=lambda r: -r["value"])[:5]
    elif "status" in name.lower():
        rows = [{"label": s, "value": sum(j["status"] == s for j in jobs)} for s in _STATUSES]
    elif "city" in name.lower():
        cities = sorted({c["city"] for c in contacts})
        rows = [{"label": c, "value": sum(x["city"] == c for x in contacts)} for c in cities]
    elif name.startswith("Overdue"):
        rows = [
            {"label": j["id"], "value": j["value"]}
            for j in jobs
            if j["status"] not in ("done", "invoiced")
        ][:8]
    else:
        rows = [{"label": f"2026-{m:02d}", "value": rng.randrange(0, 9)} for m in range(1, 13)]
    return {
        "id": f"R-{n:02d}",
        "name": name,
        "period": "2026",
        "rows": rows,
        "owner": owner,
    }


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header row; values that a spreadsheet would run as a formula are
    prefixed with a quote (CSV injection)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c, "")) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
