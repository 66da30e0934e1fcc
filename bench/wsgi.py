"""The real web app, sending its tasks to the benchmark's own Celery queue.

Settings have no queue name of their own, and the machine's Redis is shared: without
this, another developer's worker on the default queue could take the benchmark's import.
"""

import os

from heyloyalty.celery import app
from heyloyalty.wsgi import application

app.conf.task_default_queue = os.environ["BENCH_CELERY_QUEUE"]

__all__ = ["application"]
