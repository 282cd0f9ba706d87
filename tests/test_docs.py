"""The docs stay true: every error code and every setting is documented."""

from __future__ import annotations

from pathlib import Path

from sessionkeeper import settings
from sessionkeeper.errors import CATALOGUE

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_error_code_is_in_the_catalogue_page() -> None:
    text = (DOCS / "errors.md").read_text()
    for spec in CATALOGUE.values():
        assert f"| `{spec.code}` | {spec.status} |" in text, spec.code


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for model in settings.MODELS:
        for name in model.model_fields:
            assert f"SESSIONKEEPER_{name.upper()}" in text, name
