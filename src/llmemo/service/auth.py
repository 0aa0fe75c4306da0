"""Who may call /v1/warm: an Upstash QStash signature, or the configured bearer token.

QStash signs each delivery with an HS256 JWT in `Upstash-Signature`: `iss` "Upstash", `sub` the
URL it calls, `nbf`/`exp` (5 minutes), `jti`, and `body`, the base64url SHA-256 of the raw body.
It is checked against the current signing key, then the next one (so a key rotation needs no
restart). Keys and tokens are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from llmemo.service.errors import AuthError

__all__ = ["AuthError", "Caller", "WarmAuth", "body_hash"]

log = logging.getLogger("llmemo.service.auth")
LEEWAY = 5.0  # seconds of clock skew allowed on nbf/exp (as the QStash SDKs' clock tolerance)
_REQUIRED = ["iss", "sub", "exp", "nbf", "body"]
# PyJWT >= 2.10 warns on each decode with a key under 32 bytes (QStash chooses the keys; we say it
# once at start-up instead); older versions never warn.
_SHORT_KEY: type[Warning] | None = getattr(jwt, "InsecureKeyLengthWarning", None)
_URL_HINT = "set LLMEMO_WARM_URL to the exact URL QStash calls when a proxy sits in front"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller of /v1/warm.

    name: its identity for rate limiting. message_id: `Upstash-Message-Id` or `Idempotency-Key`.
    jti/expires: the signature's id and expiry (QStash only); a signature without a `jti` claim
    is identified by its `body` claim and `iat` (else `nbf`), so it is never anonymous.
    """

    kind: Literal["qstash", "token"]
    name: str
    message_id: str | None = None
    jti: str | None = None
    expires: float | None = None

    @property
    def run_id(self) -> str | None:
        """What makes a delivery the same as an earlier one: the message id, else the jti."""
        return self.message_id or self.jti


def body_hash(body: bytes) -> str:
    """base64url SHA-256 of the raw body, without padding (what the `body` claim carries)."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")


def signature_id(claims: Mapping[str, Any]) -> str:
    """What identifies one signature: its `jti`, else its body claim and issue time."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        return jti
    issued = claims.get("iat", claims.get("nbf"))
    return f"~body:{claims.get('body')}:iat:{issued}"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _message_id(headers: Mapping[str, str]) -> str | None:
    value = headers.get("upstash-message-id") or headers.get("idempotency-key")
    value = value.strip() if value else None
    return value[:200] if value else None


class WarmAuth:
    """Verifies a request's credentials; `authenticate` returns the Caller or raises AuthError."""

    def __init__(
        self,
        *,
        current_key: str | None = None,
        next_key: str | None = None,
        token: str | None = None,
        url: str | None = None,
        leeway: float = LEEWAY,
    ) -> None:
        self.keys = [k for k in (current_key, next_key) if k]
        self.token = token or None
        self.url = url.rstrip("/") if url else None
        self.leeway = leeway
        if any(len(k.encode()) < 32 for k in self.keys):  # said once here, not on every request
            log.warning("a QStash signing key is shorter than 32 bytes (weak for HS256)")

    @property
    def enabled(self) -> bool:
        return bool(self.keys or self.token)

    def authenticate(self, headers: Mapping[str, str], body: bytes, url: str) -> Caller:
        """The caller of a request with these headers and raw body, sent to `url` (its full URL).

        `url` is used as the expected `sub` unless a public URL was configured.
        """
        if not self.enabled:
            raise AuthError(
                "warming is not enabled on this service: set QSTASH_CURRENT_SIGNING_KEY and "
                "QSTASH_NEXT_SIGNING_KEY (for QStash), or LLMEMO_WARM_TOKEN (for a bearer token)"
            )
        signature = headers.get("upstash-signature")
        if signature is not None:
            claims = self.verify_signature(signature.strip(), body, self.expected_url(url))
            return Caller(
                "qstash", "qstash", _message_id(headers), signature_id(claims), float(claims["exp"])
            )
        scheme, _, credential = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            if self.token is None:
                raise AuthError("bearer tokens are not accepted here: LLMEMO_WARM_TOKEN is not set")
            if not _same(credential.strip(), self.token):
                raise AuthError("invalid warm token")
            return Caller("token", "token", _message_id(headers))
        raise AuthError(
            "missing credentials: send an Upstash-Signature header (QStash) "
            "or Authorization: Bearer <warm token>"
        )

    def expected_url(self, url: str) -> str:
        """The `sub` a token must carry: the configured public URL for this path, or `url`."""
        if self.url is None:
            return url
        path = url.split("/v1/warm", 1)[1] if "/v1/warm" in url else ""
        return self.url + path

    def verify_signature(self, signature: str, body: bytes, url: str) -> dict[str, Any]:
        """The claims of a valid QStash signature for this body and URL; AuthError otherwise."""
        if not self.keys:
            raise AuthError(
                "Upstash-Signature is not accepted here: no QStash signing keys are configured "
                "(QSTASH_CURRENT_SIGNING_KEY, QSTASH_NEXT_SIGNING_KEY)"
            )
        claims = self._decode(signature)
        sub = claims["sub"]
        if not isinstance(sub, str) or not _same(sub, url):
            raise AuthError(
                f"Upstash-Signature is for {str(sub)!r}, not for this endpoint ({url!r}); {_URL_HINT}"
            )
        claimed = claims["body"]
        if not isinstance(claimed, str) or not _same(claimed.rstrip("="), body_hash(body)):
            raise AuthError(
                "the body does not match the Upstash-Signature's body claim (it was changed)"
            )
        return claims

    def _decode(self, signature: str) -> dict[str, Any]:
        """Verify with the current key, then the next; translate PyJWT's errors into reasons."""
        for number, key in enumerate(self.keys):
            try:
                with warnings.catch_warnings():
                    if _SHORT_KEY is not None:
                        warnings.simplefilter("ignore", _SHORT_KEY)
                    claims: dict[str, Any] = jwt.decode(
                        signature,
                        key,
                        algorithms=["HS256"],
                        issuer="Upstash",
                        leeway=self.leeway,
                        options={"require": _REQUIRED, "verify_aud": False},
                    )
                return claims
            except jwt.InvalidSignatureError:
                if number == len(self.keys) - 1:
                    raise AuthError(
                        "Upstash-Signature does not match the current or the next signing key"
                    ) from None
            except jwt.ExpiredSignatureError:
                raise AuthError("Upstash-Signature has expired (exp)") from None
            except jwt.ImmatureSignatureError:
                raise AuthError("Upstash-Signature is not valid yet (nbf/iat)") from None
            except jwt.InvalidIssuerError:
                raise AuthError("Upstash-Signature was not issued by Upstash (iss)") from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthError(f"Upstash-Signature lacks the {exc.claim!r} claim") from None
            except jwt.InvalidAlgorithmError:
                raise AuthError("Upstash-Signature is not signed with HS256") from None
            except jwt.InvalidTokenError as exc:
                raise AuthError(f"malformed Upstash-Signature: {exc}") from None
        raise AssertionError("unreachable: there is at least one key")
