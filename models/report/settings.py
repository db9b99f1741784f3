"""How the report writes its figures (the ``report`` config group)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Strict

from models.settings import Expect, Flag, Text, integer, listing, settings


@settings
class ReportSettings:
    """``currency`` is written with every amount (before it, or after it with
    ``currency_after``; empty: none); amounts have ``money_decimals`` decimals, probabilities and
    shares are percentages with ``percent_decimals``; ``contacts_per_action`` customers are
    listed to contact per recommended action (0: no lists), but for the actions
    ``not_contacted`` names (e.g. letting a customer go)."""

    currency: Annotated[str, Strict(), Expect("a text (empty for none)")] = "$"
    currency_after: Flag = False
    money_decimals: integer(ge=0, le=4) = 0
    percent_decimals: integer(ge=0, le=3) = 1
    contacts_per_action: integer(ge=0, le=1000) = 10
    not_contacted: listing(Text, unique=True) = ("let go: no paid contact",)
