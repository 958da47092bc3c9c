"""CSV cells that a spreadsheet shows as text: every CSV the service writes goes through here."""

from __future__ import annotations

import json
from typing import Any

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text
# cells get a leading apostrophe, which spreadsheets show as text and do not evaluate (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    if isinstance(cell, dict | list):  # a JSON parameter value: its text, neutralised too
        return neutralise(json.dumps(cell))
    return cell
