"""Bounces and complaints: the service, and ESP tracking webhooks through django-anymail
(Postmark's real payloads, POSTed over HTTP with basic auth)."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from accounts.models import Account
from campaigns.bounces import bounce_record
from campaigns.models import Bounce, BounceKind, Campaign, Delivery, DeliveryStatus, Unsubscribe
from members import services
from members.models import List, Member, MemberStatus
from tests.conftest import Personas

WEBHOOK = "/anymail/postmark/tracking/"
SECRET = "postmark:s3cret-webhook-pass"


def make_list(account: Account, name: str = "Nyheder") -> List:
    return services.list_create(account=account, name=name)


def make_member(member_list: List, email: str = "hans@example.dk") -> Member:
    return services.member_create(member_list=member_list, values={"email": email})


def make_delivery(member: Member, campaign: Campaign | None = None) -> Delivery:
    campaign = campaign or Campaign.objects.create(account=member.list.account, name="November")
    return Delivery.objects.create(
        campaign=campaign, member=member, email=member.email, status=DeliveryStatus.SENT
    )


def status_of(member: Member) -> tuple[str, str]:
    member.refresh_from_db()
    return member.status, member.email_status


# -- the service ----------------------------------------------------------------------------


def test_a_hard_bounce_stops_the_address_on_every_list_of_the_account_only(
    personas: Personas,
):
    news = make_member(make_list(personas.account_a))
    offers = make_member(make_list(personas.account_a, "Tilbud"))
    elsewhere = make_member(make_list(personas.account_b))
    neighbour = make_member(news.list, "grete@example.dk")
    delivery = make_delivery(news)
    bounce = bounce_record(
        account=personas.account_a,
        email="Hans@Example.DK",
        kind=BounceKind.HARD,
        source="smtp",
        reason="550 5.1.1 user unknown",
        delivery=delivery,
    )
    assert status_of(news) == (MemberStatus.BOUNCED, MemberStatus.BOUNCED)
    assert status_of(offers) == (MemberStatus.BOUNCED, MemberStatus.BOUNCED)
    assert status_of(elsewhere) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert status_of(neighbour) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert (bounce.account, bounce.email, bounce.kind) == (
        personas.account_a,
        "hans@example.dk",
        "hard",
    )
    assert (bounce.delivery, bounce.member_id, bounce.campaign_id) == (
        delivery,
        news.pk,
        delivery.campaign_id,
    )


def test_the_same_bounce_twice_is_recorded_once(personas: Personas):
    delivery = make_delivery(make_member(make_list(personas.account_a)))

    def record() -> Bounce:
        return bounce_record(
            account=personas.account_a,
            email=delivery.email,
            kind=BounceKind.HARD,
            source="dsn",
            reason="5.1.1",
            delivery=delivery,
        )

    first = record()
    assert record() == first
    assert Bounce.objects.count() == 1


def test_a_complaint_outranks_a_bounce_and_nothing_reactivates(personas: Personas):
    member = make_member(make_list(personas.account_a))

    def record(kind: BounceKind) -> None:
        bounce_record(
            account=personas.account_a, email=member.email, kind=kind, source="x", reason=""
        )

    record(BounceKind.COMPLAINT)
    assert status_of(member) == (MemberStatus.COMPLAINED, MemberStatus.COMPLAINED)
    record(BounceKind.HARD)
    record(BounceKind.SOFT)
    assert status_of(member) == (MemberStatus.COMPLAINED, MemberStatus.COMPLAINED)
    assert Bounce.objects.count() == 3


def test_a_soft_bounce_is_only_recorded(personas: Personas):
    member = make_member(make_list(personas.account_a))
    unsubscribed = make_member(make_list(personas.account_a, "Tilbud"), "ulla@example.dk")
    Member.objects.filter(pk=unsubscribed.pk).update(
        status=MemberStatus.UNSUBSCRIBED, email_status=MemberStatus.UNSUBSCRIBED
    )
    for each in (member, unsubscribed):
        bounce_record(
            account=personas.account_a,
            email=each.email,
            kind=BounceKind.SOFT,
            source="dsn",
            reason="452 4.2.2 mailbox full",
        )
    assert status_of(member) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert status_of(unsubscribed)[0] == MemberStatus.UNSUBSCRIBED
    assert Bounce.objects.filter(kind="soft").count() == 2


def test_an_empty_address_matches_no_mobile_only_member(personas: Personas):
    mobile_only = services.member_create(
        member_list=make_list(personas.account_a), values={"mobile": "+4512345678"}
    )
    bounce_record(account=personas.account_a, email="", kind=BounceKind.HARD, source="x", reason="")
    assert status_of(mobile_only)[0] == MemberStatus.ACTIVE


# -- ESP webhooks (Postmark) -------------------------------------------------------------------


@pytest.fixture
def esp(settings) -> Client:
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    auth = base64.b64encode(SECRET.encode()).decode()
    return Client(HTTP_AUTHORIZATION=f"Basic {auth}")


def postmark_bounce(email: str, delivery: Delivery | None, **changes: object) -> dict:
    """Postmark's bounce webhook body, as its documentation shows it."""
    body = {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "campaign",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {"delivery_id": str(delivery.pk)} if delivery else {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "nyheder@bageriet.dk",
        "BouncedAt": "2026-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Novembertilbud",
        "Content": "<Full dump of bounce>",
    }
    return {**body, **changes}


def postmark_spam_complaint(email: str, delivery: Delivery) -> dict:
    return {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "campaign",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Metadata": {"delivery_id": str(delivery.pk)},
        "ServerID": 1234,
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "nyheder@bageriet.dk",
        "BouncedAt": "2026-11-05T16:33:54.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Novembertilbud",
        "Content": "<Abuse report dump>",
    }


def post(client: Client, body: dict):
    return client.post(WEBHOOK, data=json.dumps(body), content_type="application/json")


def test_a_postmark_hard_bounce_marks_the_member_bounced(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    assert post(esp, postmark_bounce("hans@example.dk", delivery)).status_code == 200
    assert status_of(member) == (MemberStatus.BOUNCED, MemberStatus.BOUNCED)
    bounce = Bounce.objects.get()
    assert (bounce.kind, bounce.source, bounce.delivery_id) == ("hard", "postmark", delivery.pk)
    assert (bounce.campaign_id, bounce.account_id) == (delivery.campaign_id, personas.account_a.pk)
    assert "5.1.1" in bounce.reason
    # Postmark retries a webhook it thinks failed: still one row.
    assert post(esp, postmark_bounce("hans@example.dk", delivery)).status_code == 200
    assert Bounce.objects.count() == 1


def test_a_postmark_spam_complaint_marks_the_member_complained(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    assert post(esp, postmark_spam_complaint("hans@example.dk", delivery)).status_code == 200
    assert status_of(member) == (MemberStatus.COMPLAINED, MemberStatus.COMPLAINED)
    assert Bounce.objects.get().kind == "complaint"


def test_a_postmark_soft_bounce_is_only_recorded(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    body = postmark_bounce(
        "hans@example.dk",
        delivery,
        Type="SoftBounce",
        TypeCode=4096,
        Name="Soft bounce",
        Details="smtp;552 5.2.2 mailbox full",
    )
    assert post(esp, body).status_code == 200
    assert status_of(member) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert Bounce.objects.get().kind == "soft"


def test_without_metadata_the_latest_delivery_to_the_address_is_used(
    personas: Personas, esp: Client
):
    elsewhere = make_member(make_list(personas.account_b))
    make_delivery(elsewhere)
    member = make_member(make_list(personas.account_a))
    latest = make_delivery(member)
    assert post(esp, postmark_bounce("HANS@example.dk", None)).status_code == 200
    bounce = Bounce.objects.get()
    assert (bounce.delivery_id, bounce.account_id) == (latest.pk, personas.account_a.pk)
    assert status_of(member)[0] == MemberStatus.BOUNCED
    assert status_of(elsewhere)[0] == MemberStatus.ACTIVE


def test_metadata_naming_another_address_is_not_believed(personas: Personas, esp: Client):
    carols = make_member(make_list(personas.account_b), "carols.kunde@example.dk")
    other = make_delivery(carols)
    member = make_member(make_list(personas.account_a))
    make_delivery(member)
    assert post(esp, postmark_bounce("hans@example.dk", other)).status_code == 200
    assert status_of(carols)[0] == MemberStatus.ACTIVE
    assert status_of(member)[0] == MemberStatus.BOUNCED


def test_a_postmark_unsubscribe_unsubscribes(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    body = {
        "RecordType": "SubscriptionChange",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-11-01T10:53:34.416071Z",
        "Recipient": "hans@example.dk",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "campaign",
        "Metadata": {"delivery_id": str(delivery.pk)},
    }
    assert post(esp, body).status_code == 200
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED
    row = Unsubscribe.objects.get()
    assert (row.source, row.campaign_id) == ("postmark", delivery.campaign_id)


def test_an_event_for_an_unknown_address_changes_nothing(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    assert post(esp, postmark_bounce("stranger@example.dk", None)).status_code == 200
    assert post(esp, postmark_bounce("", None)).status_code == 200
    assert not Bounce.objects.exists()
    assert status_of(member)[0] == MemberStatus.ACTIVE


def test_the_webhook_refuses_a_post_without_the_secret(personas: Personas, esp: Client):
    member = make_member(make_list(personas.account_a))
    delivery = make_delivery(member)
    body = json.dumps(postmark_bounce("hans@example.dk", delivery))
    stranger = Client()
    wrong = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"postmark:guess").decode())
    for client in (stranger, wrong):
        response = client.post(WEBHOOK, data=body, content_type="application/json")
        assert response.status_code == 400
    assert status_of(member)[0] == MemberStatus.ACTIVE
    assert not Bounce.objects.exists()


def test_without_a_configured_secret_the_webhooks_accept_no_one(personas: Personas):
    # settings.py closes the webhooks with a random secret when none is configured.
    member = make_member(make_list(personas.account_a))
    body = json.dumps(postmark_bounce("hans@example.dk", make_delivery(member)))
    assert Client().post(WEBHOOK, body, content_type="application/json").status_code == 400
