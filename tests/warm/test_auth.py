"""Who may call /v1/warm: QStash signatures (checked against the official SDK too) and the token."""

from __future__ import annotations

import time

import httpx
import jwt
import orjson
import pytest
from qstash import Receiver
from qstash.errors import SignatureError

from llmemo.testing.server import UpstreamServer
from tests.service.conftest import ServiceServer
from tests.warm.conftest import CURRENT, NEXT, PUBLIC_URL, TOKEN, Serve, sign

BODY = orjson.dumps({"query": "Summarise Moby-Dick in one line.", "model": "gpt-4o-mini"})
RECEIVER = Receiver(current_signing_key=CURRENT, next_signing_key=NEXT)


def warm(service: ServiceServer, body: bytes = BODY, **headers: str) -> httpx.Response:
    return httpx.post(
        service.url + "/v1/warm",
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )


def official(signature: str, body: bytes = BODY, url: str = PUBLIC_URL) -> bool:
    """What the qstash SDK's Receiver says of a signature."""
    try:
        RECEIVER.verify(signature=signature, body=body.decode(), url=url)
    except SignatureError:
        return False
    return True


@pytest.mark.parametrize("key", [CURRENT, NEXT], ids=["current key", "next key"])
def test_a_valid_signature_warms(
    service: ServiceServer, upstream: UpstreamServer, key: str
) -> None:
    signature = sign(BODY, key)
    assert official(signature)
    response = warm(service, **{"upstash-signature": signature})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["summary"]["stored"] == 1
    assert data["results"][0]["status"] == "stored"
    assert upstream.stats().total == 1


def _tampered() -> tuple[str, bytes]:
    return sign(BODY), BODY.replace(b"one line", b"two lines")


def _alg_none() -> str:
    claims = jwt.decode(sign(BODY), options={"verify_signature": False})
    return jwt.encode(claims, None, algorithm="none")


BAD = {
    "wrong key": (lambda: sign(BODY, "sig_wrong_" + "w" * 32), BODY, "does not match"),
    "tampered body": (lambda: _tampered()[0], _tampered()[1], "body does not match"),
    "wrong sub": (lambda: sign(BODY, url="https://evil.example.com/v1/warm"), BODY, "is for"),
    "expired": (lambda: sign(BODY, exp_in=-60, nbf_in=-360), BODY, "expired"),
    "not yet valid": (lambda: sign(BODY, nbf_in=120), BODY, "not valid yet"),
    "wrong issuer": (lambda: sign(BODY, iss="Mallory"), BODY, "not issued by Upstash"),
    "malformed": (lambda: "not-a-jwt", BODY, "malformed"),
    "alg none": (_alg_none, BODY, "HS256"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_signature_is_refused_without_calling_upstream(
    service: ServiceServer, upstream: UpstreamServer, case: str
) -> None:
    make, body, words = BAD[case]
    signature = make()
    assert not official(signature, body)  # the official SDK refuses it too: the token is real
    response = warm(service, body, **{"upstash-signature": signature})
    assert response.status_code == 401
    assert words in response.json()["error"]["message"]
    assert upstream.stats().total == 0


def test_small_clock_skew_is_tolerated(service: ServiceServer) -> None:
    signature = sign(BODY, nbf_in=3)  # QStash's clock 3 s ahead of ours
    assert warm(service, **{"upstash-signature": signature}).status_code == 200


def test_missing_credentials(service: ServiceServer, upstream: UpstreamServer) -> None:
    response = warm(service)
    assert response.status_code == 401
    assert "Upstash-Signature" in response.json()["error"]["message"]
    assert upstream.stats().total == 0


def test_the_bearer_token(service: ServiceServer, upstream: UpstreamServer) -> None:
    wrong = warm(service, authorization="Bearer nope")
    assert wrong.status_code == 401
    assert "invalid warm token" in wrong.json()["error"]["message"]
    assert TOKEN not in wrong.text
    assert upstream.stats().total == 0
    assert warm(service, authorization=f"Bearer {TOKEN}").status_code == 200
    assert upstream.stats().total == 1


def test_without_a_public_url_the_sub_is_the_url_called(
    serve: Serve, upstream: UpstreamServer
) -> None:
    service = serve(warm_url=None)
    called = service.url + "/v1/warm"
    assert warm(service, **{"upstash-signature": sign(BODY, url=called)}).status_code == 200
    refused = warm(service, **{"upstash-signature": sign(BODY, url=PUBLIC_URL)})
    assert refused.status_code == 401
    assert "LLMEMO_WARM_URL" in refused.json()["error"]["message"]


def test_warming_is_off_without_keys_or_token(serve: Serve, upstream: UpstreamServer) -> None:
    service = serve(qstash_current_signing_key=None, qstash_next_signing_key=None, warm_token=None)
    response = warm(service, authorization=f"Bearer {TOKEN}")
    assert response.status_code == 401
    assert "not enabled" in response.json()["error"]["message"]
    assert upstream.stats().total == 0


def test_a_short_token_expiry_window_is_still_checked(service: ServiceServer) -> None:
    # exp in 2 s: valid now (the leeway is for skew, it never extends a token by minutes)
    assert warm(service, **{"upstash-signature": sign(BODY, exp_in=2)}).status_code == 200
    stale = sign(BODY, exp_in=-10, nbf_in=-300)
    assert time.time() > jwt.decode(stale, options={"verify_signature": False})["exp"] + 5
    assert warm(service, **{"upstash-signature": stale}).status_code == 401


def test_keys_come_from_the_environment_and_are_never_shown(
    serve: Serve, upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSTASH_CURRENT_SIGNING_KEY", CURRENT)
    monkeypatch.setenv("QSTASH_NEXT_SIGNING_KEY", NEXT)
    monkeypatch.setenv("LLMEMO_WARM_TOKEN", TOKEN)
    service = serve(qstash_current_signing_key=None, qstash_next_signing_key=None, warm_token=None)
    shown = repr(service.settings) + service.settings.model_dump_json()
    assert CURRENT not in shown and NEXT not in shown and TOKEN not in shown
    assert warm(service, **{"upstash-signature": sign(BODY, NEXT)}).status_code == 200
    assert warm(service, authorization=f"Bearer {TOKEN}").status_code == 200


def test_a_short_signing_key_still_verifies(serve: Serve, upstream: UpstreamServer) -> None:
    short = "sig_short_0123456"  # under 32 bytes: PyJWT warns; the service says so once, at start
    service = serve(qstash_current_signing_key=short)
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        signature = sign(BODY, short)
    assert warm(service, **{"upstash-signature": signature}).status_code == 200
