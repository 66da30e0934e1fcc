import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "heyloyalty.settings")
django_application = get_wsgi_application()

# The open pixel and tracked links, the busiest URLs, skip the middleware when they can.
from campaigns.tracking_wsgi import with_tracking  # noqa: E402 - needs django.setup()

application = with_tracking(django_application)
