"""The Celery app. Configured from Django settings (the CELERY_* names)."""

import os

from celery import Celery

from heyloyalty.schedule import BEAT_SCHEDULE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heyloyalty.settings")

app = Celery("heyloyalty")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.beat_schedule = BEAT_SCHEDULE
app.autodiscover_tasks()
