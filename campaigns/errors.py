"""The one error a campaign operation raises for bad input: each problem named by the
field it concerns, so the API answers 400 naming the field and a form marks it."""

from __future__ import annotations


class CampaignError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors
