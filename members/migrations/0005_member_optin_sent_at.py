"""When a member's opt-in confirmation was mailed, and an index of those still waiting.

The index is built CONCURRENTLY (so outside a transaction): on a table of millions of
members a plain CREATE INDEX would block every member write while it scans.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("members", "0004_segments_webhooks"),
    ]

    operations = [
        migrations.AddField(
            model_name="member",
            name="optin_sent_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="confirmation mailed"),
        ),
        AddIndexConcurrently(
            model_name="member",
            index=models.Index(
                condition=models.Q(("optin_sent_at__isnull", True), ("status", "unconfirmed")),
                fields=["list", "created_at", "id"],
                name="member_optin_pending",
            ),
        ),
    ]
