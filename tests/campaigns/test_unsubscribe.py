"""Unsubscribing: RFC 8058 one-click, the page for people, and the preferences page."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign, Unsubscribe
from campaigns.tokens import bounce_token, unsubscribe_token
from campaigns.unsubscribe import member_unsubscribe, preferences_for, preferences_update
from members import services
from members.models import List, Member, MemberStatus
from tests.conftest import Personas


def member_on(member_list: List, email: str = "hans@example.dk") -> Member:
    return services.member_create(member_list=member_list, values={"email": email})


def setup(personas: Personas) -> tuple[Member, Campaign, str]:
    member_list = services.list_create(account=personas.account_a, name="Nyheder")
    member = member_on(member_list)
    campaign = Campaign.objects.create(account=personas.account_a, name="November")
    return member, campaign, unsubscribe_token(member.pk, campaign.pk)


def mail_client() -> Client:
    """What a mail provider's server is: no cookies, no CSRF token, checks enforced."""
    return Client(enforce_csrf_checks=True)


def one_click(client: Client, token: str):
    return client.post(
        f"/u/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )


def status_of(member: Member) -> tuple[str, str]:
    member.refresh_from_db()
    return member.status, member.email_status


# -- one-click (RFC 8058) -----------------------------------------------------------------


def test_one_click_post_as_gmail_sends_it_unsubscribes_at_once(personas: Personas):
    member, campaign, token = setup(personas)
    response = one_click(mail_client(), token)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "unsubscribed" in response.text
    assert status_of(member) == (MemberStatus.UNSUBSCRIBED, MemberStatus.UNSUBSCRIBED)
    (row,) = Unsubscribe.objects.all()
    assert (row.source, row.campaign_id, row.member_id) == ("one-click", campaign.pk, member.pk)
    assert (row.account_id, row.list_id) == (personas.account_a.pk, member.list_id)


def test_repeating_the_one_click_post_is_harmless(personas: Personas):
    _, _, token = setup(personas)
    client = mail_client()
    assert one_click(client, token).status_code == 200
    assert one_click(client, token).status_code == 200
    assert Unsubscribe.objects.count() == 1


def test_one_click_also_works_as_multipart_and_without_a_content_type(personas: Personas):
    member, _, token = setup(personas)
    response = mail_client().post(f"/u/{token}", {"List-Unsubscribe": "One-Click"})
    assert response["Content-Type"].startswith("text/plain")
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED
    other = member_on(member.list, "grete@example.dk")
    response = mail_client().generic(
        "POST", f"/u/{unsubscribe_token(other.pk)}", b"List-Unsubscribe=One-Click"
    )
    assert response.status_code == 200
    assert status_of(other)[0] == MemberStatus.UNSUBSCRIBED


def test_a_get_changes_nothing(personas: Personas):
    member, _, token = setup(personas)
    client = mail_client()
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert "Unsubscribe hans@example.dk from Nyheder?" in page.text
    assert '<button type="submit"' in page.text
    assert client.head(f"/u/{token}").status_code == 200
    assert status_of(member) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert not Unsubscribe.objects.exists()
    assert page["X-Robots-Tag"].startswith("noindex")
    assert "no-cache" in page["Cache-Control"] or "max-age=0" in page["Cache-Control"]


def test_the_pages_button_unsubscribes_and_offers_the_preferences(personas: Personas):
    member, _, token = setup(personas)
    page = mail_client().post(f"/u/{token}", {"confirm": "1"})
    assert page.status_code == 200
    assert "You are unsubscribed" in page.text
    assert "hans@example.dk will receive no more email from Nyheder." in page.text
    assert reverse("unsubscribe_preferences", kwargs={"token": token}) in page.text
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED
    assert Unsubscribe.objects.get().source == "page"
    again = mail_client().get(f"/u/{token}")
    assert "You are not subscribed" in again.text


def test_bad_forged_or_foreign_tokens_get_a_friendly_404(personas: Personas, settings):
    settings.DEBUG = False
    member, _, token = setup(personas)
    bad = [
        "nonsense",
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        token[:10],
        bounce_token(1),  # a token of another kind
        "x" * 300,
        "%00%ff",
    ]
    client = mail_client()
    for each in bad:
        for response in (
            client.get(f"/u/{each}"),
            one_click(client, each),
            client.post(f"/u/{each}", {"confirm": "1"}),
            client.get(f"/u/{each}/preferences"),
            client.post(f"/u/{each}/preferences", {"list": [member.list_id]}),
        ):
            assert response.status_code == 404, each
            assert "This link does not work" in response.text
    assert status_of(member)[0] == MemberStatus.ACTIVE
    assert not Unsubscribe.objects.exists()


def test_a_token_signed_with_an_old_secret_key_still_works(personas: Personas, settings):
    member, _, token = setup(personas)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 50
    assert one_click(mail_client(), token).status_code == 200
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED


def test_a_deleted_or_obscured_member_gets_a_calm_answer(personas: Personas):
    member, _, token = setup(personas)
    gone = member_on(member.list, "gone@example.dk")
    gone_token = unsubscribe_token(gone.pk)
    services.member_delete(member=gone)
    services.member_obscure(member=member)
    client = mail_client()
    for each in (token, gone_token):
        page = client.get(f"/u/{each}")
        assert page.status_code == 200
        assert "You are not subscribed" in page.text
        assert one_click(client, each).status_code == 200
        assert client.post(f"/u/{each}", {"confirm": "1"}).status_code == 200
        assert client.get(f"/u/{each}/preferences").status_code == 404
    assert not Unsubscribe.objects.exists()


def test_a_bounced_or_complained_member_stays_so(personas: Personas):
    member, _, token = setup(personas)
    Member.objects.filter(pk=member.pk).update(
        status=MemberStatus.BOUNCED, email_status=MemberStatus.BOUNCED
    )
    assert one_click(mail_client(), token).status_code == 200
    assert status_of(member) == (MemberStatus.BOUNCED, MemberStatus.BOUNCED)
    assert not Unsubscribe.objects.exists()


def test_the_pages_need_no_sign_in_and_work_for_a_signed_in_user(personas: Personas):
    member, _, token = setup(personas)
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas.alice)
    assert client.get(f"/u/{token}").status_code == 200
    assert client.post(f"/u/{token}", {"confirm": "1"}).status_code == 200
    assert status_of(member)[0] == MemberStatus.UNSUBSCRIBED


def test_the_pages_speak_danish(personas: Personas):
    _, _, token = setup(personas)
    client = Client(HTTP_ACCEPT_LANGUAGE="da")
    page = client.get(f"/u/{token}")
    assert 'lang="da"' in page.text
    assert "Afmeld hans@example.dk fra Nyheder?" in page.text
    assert "Afmeld</button>" in page.text
    assert "Du er afmeldt" in client.post(f"/u/{token}", {"confirm": "1"}).text
    assert "afmeldt" in one_click(client, token).text
    assert "Dine tilmeldinger" in client.get(f"/u/{token}/preferences").text
    assert "Dette link virker ikke" in client.get("/u/nonsense").text


def test_member_unsubscribe_says_whether_it_changed_anything(personas: Personas):
    member, campaign, _ = setup(personas)
    before = member.updated_at
    assert member_unsubscribe(member=member, campaign_id=campaign.pk, source="page") is True
    assert member.status == MemberStatus.UNSUBSCRIBED
    assert member.updated_at > before
    assert member_unsubscribe(member=member, campaign_id=campaign.pk, source="page") is False
    assert Unsubscribe.objects.count() == 1


def test_a_campaign_that_is_gone_is_not_credited(personas: Personas):
    _, campaign, token = setup(personas)
    campaign.delete()
    assert one_click(mail_client(), token).status_code == 200
    assert Unsubscribe.objects.get().campaign_id is None


# -- preferences ---------------------------------------------------------------------------


class Lists:
    """Hans is on three of account A's lists (bounced on one) and on one of account B's."""

    def __init__(self, personas: Personas) -> None:
        account = personas.account_a
        self.news = services.list_create(account=account, name="Nyheder")
        self.offers = services.list_create(account=account, name="Tilbud")
        self.events = services.list_create(account=account, name="Arrangementer")
        self.other = services.list_create(account=personas.account_b, name="Carols liste")
        self.hans = member_on(self.news)
        self.hans_offers = member_on(self.offers)
        self.hans_events = member_on(self.events)
        self.hans_other = member_on(self.other)
        member_on(self.news, "someone.else@example.dk")
        Member.objects.filter(pk=self.hans_events.pk).update(
            status=MemberStatus.BOUNCED, email_status=MemberStatus.BOUNCED
        )
        self.token = unsubscribe_token(self.hans.pk)
        self.url = f"/u/{self.token}/preferences"


def test_preferences_show_the_accounts_lists_with_the_address(personas: Personas):
    lists = Lists(personas)
    page = mail_client().get(lists.url)
    assert page.status_code == 200
    assert "Nyheder" in page.text and "Tilbud" in page.text and "Arrangementer" in page.text
    assert "Carols liste" not in page.text
    assert f'<label for="list-{lists.news.pk}">' in page.text
    choices = {c.name: (c.subscribed, c.changeable) for c in preferences_for(member=lists.hans)}
    assert choices == {
        "Arrangementer": (False, False),
        "Nyheder": (True, True),
        "Tilbud": (True, True),
    }


def test_saving_preferences_unsubscribes_from_unticked_lists(personas: Personas):
    lists = Lists(personas)
    client = mail_client()
    response = client.post(lists.url, {"list": [str(lists.news.pk)]})
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert "Your choices are saved." in page.text
    assert status_of(lists.hans)[0] == MemberStatus.ACTIVE
    assert status_of(lists.hans_offers)[0] == MemberStatus.UNSUBSCRIBED
    assert status_of(lists.hans_events)[0] == MemberStatus.BOUNCED
    assert status_of(lists.hans_other)[0] == MemberStatus.ACTIVE
    (row,) = Unsubscribe.objects.all()
    assert (row.source, row.list_id) == ("preferences", lists.offers.pk)


def test_a_list_left_by_oneself_can_be_ticked_again_but_never_a_bounced_one(
    personas: Personas,
):
    lists = Lists(personas)
    client = mail_client()
    client.post(lists.url, {"list": [str(lists.news.pk)]})
    everything = [str(lists.news.pk), str(lists.offers.pk), str(lists.events.pk)]
    client.post(lists.url, {"list": [*everything, str(lists.other.pk), "junk"]})
    assert status_of(lists.hans_offers) == (MemberStatus.ACTIVE, MemberStatus.ACTIVE)
    assert status_of(lists.hans_events)[0] == MemberStatus.BOUNCED
    assert status_of(lists.hans_other)[0] == MemberStatus.ACTIVE
    lists.hans_offers.refresh_from_db()
    assert lists.hans_offers.consent_source == "preferences"


def test_a_list_someone_else_unsubscribed_cannot_be_ticked_again(personas: Personas):
    lists = Lists(personas)
    # Unsubscribed by the customer (API or dashboard): no Unsubscribe row of the person's.
    Member.objects.filter(pk=lists.hans_offers.pk).update(
        status=MemberStatus.UNSUBSCRIBED, email_status=MemberStatus.UNSUBSCRIBED
    )
    result = preferences_update(member=lists.hans, keep_list_ids=[lists.news.pk, lists.offers.pk])
    assert result.resubscribed == []
    assert status_of(lists.hans_offers)[0] == MemberStatus.UNSUBSCRIBED
    page = mail_client().get(lists.url)
    assert f'id="list-{lists.offers.pk}-why"' in page.text


def test_unsubscribing_from_every_list_and_back(personas: Personas):
    lists = Lists(personas)
    result = preferences_update(member=lists.hans, keep_list_ids=[])
    assert result.unsubscribed == sorted([lists.news.pk, lists.offers.pk])
    assert preferences_update(member=lists.hans, keep_list_ids=[]).unsubscribed == []
    result = preferences_update(member=lists.hans, keep_list_ids=[lists.news.pk, lists.offers.pk])
    assert result.resubscribed == sorted([lists.news.pk, lists.offers.pk])
    assert status_of(lists.hans)[0] == MemberStatus.ACTIVE
