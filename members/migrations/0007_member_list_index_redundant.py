"""Drop the index Django made for Member.list: every other index of the table starts with
list_id and serves the same lookups. Only the index goes (the foreign key stays as it is,
not dropped and checked again over every row, as AlterField would)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0006_webhook_deliveries"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="member",
                    name="list",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="members",
                        to="members.list",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "members_member_list_id_57246054"',
                    reverse_sql='CREATE INDEX IF NOT EXISTS "members_member_list_id_57246054" '
                    'ON "members_member" ("list_id")',
                ),
            ],
        ),
    ]
