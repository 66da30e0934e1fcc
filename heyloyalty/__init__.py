"""Heyloyalty: self-hostable email marketing."""

from heyloyalty.celery import app as celery_app

__all__ = ["celery_app"]
