"""The base of every Heyloyalty-compatible API view."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import Account
from heyloyalty.api.auth import (
    ApiClient,
    KeyRateThrottle,
    ScopePermission,
    SignatureAuthentication,
)
from heyloyalty.api.params import Params, extract_params


class ApiView(APIView):
    authentication_classes = [SignatureAuthentication]
    permission_classes = [ScopePermission]
    throttle_classes = [KeyRateThrottle]
    # Bodies are read by our own extractor (every verb, every encoding, §3), not DRF's.
    parser_classes: list[Any] = []

    def params(self, request: Request) -> Params:
        return extract_params(request._request)

    def account(self, request: Request) -> Account:
        client = request.user
        assert isinstance(client, ApiClient)  # noqa: S101 - SignatureAuthentication ran
        return client.account
