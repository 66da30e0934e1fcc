"""How the OpenAPI schema describes Heyloyalty's signature (drf-spectacular extension)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SignatureScheme(OpenApiAuthenticationExtension):
    target_class = "heyloyalty.api.auth.SignatureAuthentication"
    name = "heyloyaltySignature"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": (
                "HTTP Basic with the API key as user name and, as password, "
                "base64(hex(HMAC-SHA256(secret, X-Request-Timestamp))). Send the signed "
                "time in the X-Request-Timestamp header (RFC 1123 or ISO 8601)."
            ),
        }
