"""Webhook deliveries (the log and outbox of each webhook) and the fields that switch a
webhook off after repeated failure. A new table, and columns with defaults on a small one:
no step needs to run concurrently."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('members', '0005_member_optin_sent_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhook',
            name='disabled_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='disabled'),
        ),
        migrations.AddField(
            model_name='webhook',
            name='disabled_reason',
            field=models.TextField(blank=True, verbose_name='why it was disabled'),
        ),
        migrations.AddField(
            model_name='webhook',
            name='failures_in_row',
            field=models.PositiveIntegerField(default=0, verbose_name='failures in a row'),
        ),
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('event', models.CharField(choices=[('subscribe', 'Subscribe'), ('update', 'Update'), ('unsubscribe', 'Unsubscribe'), ('spamComplaint', 'Spam complaint'), ('click', 'Click'), ('open', 'Open'), ('hardbounce', 'Hard bounce'), ('sent', 'Sent')], max_length=16, verbose_name='event')),
                ('member_id', models.UUIDField(blank=True, null=True)),
                ('origin', models.CharField(blank=True, default='', max_length=64)),
                ('payload', models.JSONField(verbose_name='payload')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('delivered', 'Received'), ('failed', 'Failed')], default='pending', max_length=16, verbose_name='status')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                ('next_attempt_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='next attempt')),
                ('claimed_until', models.DateTimeField(blank=True, null=True)),
                ('response_status', models.PositiveSmallIntegerField(blank=True, null=True, verbose_name='response status')),
                ('response_body', models.TextField(blank=True, verbose_name='response')),
                ('error', models.TextField(blank=True, verbose_name='error')),
                ('duration_ms', models.PositiveIntegerField(blank=True, null=True, verbose_name='duration (ms)')),
                ('replay_of', models.BigIntegerField(blank=True, null=True, verbose_name='replay of')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, verbose_name='created')),
                ('delivered_at', models.DateTimeField(blank=True, null=True, verbose_name='delivered')),
                ('webhook', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='members.webhook')),
            ],
            options={
                'verbose_name': 'webhook delivery',
                'verbose_name_plural': 'webhook deliveries',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['webhook', 'id'], name='webhookdelivery_log'), models.Index(condition=models.Q(('status', 'pending')), fields=['webhook', 'id'], name='webhookdelivery_pending'), models.Index(fields=['created_at'], name='webhookdelivery_created')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('origin', ''), _negated=True), fields=('webhook', 'member_id', 'origin'), name='webhookdelivery_unique_origin')],
            },
        ),
    ]
