"""/dashboard's sign-in and CSRF rules, and the entry endpoints (GET /admin/entries, POST
/admin/invalidate), over HTTP against a real service on Redis (the browser tests are in
test_dashboard_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmemo.service.admin import COOKIE
from tests.service.conftest import ALICE, Serve, ServiceServer
from tests.service.test_cli import serving

TOKEN = "dashboard-test-token-0123456789"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin(serve: Serve) -> ServiceServer:
    return serve(admin_token=TOKEN)


@pytest.fixture
def client(admin: ServiceServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=admin.url, timeout=30, follow_redirects=False) as http:
        yield http


def ask(client: httpx.Client, text: str, model: str = "gpt-4o-mini", **headers: str) -> str:
    """One chat request through the proxy; returns its X-LLMemo-Cache."""
    answer = client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {ALICE}", **headers},
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-llmemo-cache"]


def entries(client: httpx.Client, **query: Any) -> dict[str, Any]:
    answer = client.get("/admin/entries", params=query, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def signed_in(client: httpx.Client) -> httpx.Client:
    answer = client.post("/dashboard/login", data={"token": TOKEN})
    assert answer.status_code == 303
    return client


# -- the page and its sign-in ---------------------------------------------------------------


def test_without_a_configured_token_the_page_is_refused_and_says_how_to_set_one(
    service: ServiceServer,
) -> None:
    answer = httpx.get(f"{service.url}/dashboard", cookies={COOKIE: "anything"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    assert "LLMEMO_ADMIN_TOKEN" in answer.text and "no admin token is configured" in answer.text
    assert "<form" not in answer.text


def test_the_login_form_sets_an_httponly_strict_cookie_that_opens_the_page(
    client: httpx.Client,
) -> None:
    refused = client.get("/dashboard")
    assert refused.status_code == 401 and 'action="/dashboard/login"' in refused.text
    wrong = client.post("/dashboard/login", data={"token": "not-it"})
    assert wrong.status_code == 401 and "wrong token" in wrong.text
    assert COOKIE not in wrong.headers.get("set-cookie", "")

    answer = client.post("/dashboard/login", data={"token": TOKEN})
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    cookie = answer.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie
    assert "samesite=strict" in cookie and "path=/" in cookie

    page = client.get("/dashboard")
    assert page.status_code == 200 and 'id="entries"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "innerHTML" not in script.text  # the page builds its DOM from text nodes only
    assert client.get("/dashboard/static/..%2fapp.py").status_code == 404


def test_a_login_posted_from_another_site_sets_no_cookie(client: httpx.Client) -> None:
    answer = client.post(
        "/dashboard/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"}
    )
    assert answer.status_code == 401 and "set-cookie" not in answer.headers


def test_sign_out_clears_the_cookie(client: httpx.Client) -> None:
    signed_in(client)
    answer = client.post("/dashboard/logout")
    assert answer.status_code == 303
    assert client.get("/dashboard").status_code == 401


def test_no_dashboard_serves_no_page(serve: Serve) -> None:
    off = serve(admin_token=TOKEN, dashboard=False)
    assert httpx.get(f"{off.url}/dashboard").status_code == 404
    # the admin API stays: scripts use it with the bearer token
    assert httpx.get(f"{off.url}/admin/entries", headers=ADMIN).status_code == 200


def test_serve_flags_turn_the_page_off_and_the_prompts_on(redis_url: str) -> None:
    with serving("--upstream", "demo", "--no-dashboard", REDIS_URL=redis_url) as (url, process):
        assert httpx.get(url + "/dashboard").status_code == 404
        assert process.stdout is not None
        started = next(line for line in process.stdout if "serving on" in line)
        assert "dashboard" not in started
    env = {"REDIS_URL": redis_url, "LLMEMO_ADMIN_TOKEN": TOKEN}
    with serving("--upstream", "demo", "--dashboard-show-prompts", **env) as (url, process):
        assert process.stdout is not None
        line = next(line for line in process.stdout if "dashboard on" in line)
        assert line.strip().endswith("/dashboard")  # not locked: a token is set
        with httpx.Client(base_url=url, follow_redirects=True) as http:
            page = http.post("/dashboard/login", data={"token": TOKEN})
        assert page.status_code == 200 and 'data-show-prompts="on"' in page.text
    with serving("--upstream", "demo", REDIS_URL=redis_url) as (url, process):
        assert process.stdout is not None
        line = next(line for line in process.stdout if "dashboard on" in line)
        assert "locked: set LLMEMO_ADMIN_TOKEN" in line
        assert httpx.get(url + "/dashboard").status_code == 401


def test_a_change_made_with_the_cookie_needs_the_csrf_header_and_the_same_origin(
    client: httpx.Client,
) -> None:
    signed_in(client)
    body = {"tag": "faq"}
    bare = client.post("/admin/invalidate", json=body)
    assert bare.status_code == 401 and "x-llmemo-csrf" in bare.json()["error"]["message"]
    marked = {"x-llmemo-csrf": "1"}
    cross = client.post(
        "/admin/invalidate", json=body, headers={**marked, "origin": "http://evil.example"}
    )
    assert cross.status_code == 401
    site = client.post(
        "/admin/invalidate", json=body, headers={**marked, "sec-fetch-site": "cross-site"}
    )
    assert site.status_code == 401
    same = client.post(
        "/admin/invalidate", json=body, headers={**marked, "origin": str(client.base_url)}
    )
    assert same.status_code == 200 and same.json()["deleted"] == 0
    # reading needs no header; a bearer token needs none either (no ambient credential)
    assert client.get("/admin/entries").status_code == 200
    client.cookies.clear()
    assert client.post("/admin/invalidate", json=body, headers=ADMIN).status_code == 200


# -- GET /admin/entries -----------------------------------------------------------------------


def test_entries_are_found_by_model_and_tag_with_size_age_and_ttl(client: httpx.Client) -> None:
    ask(client, "one", "gpt-4o-mini", **{"x-llmemo-tags": "faq"})
    ask(client, "two", "gpt-4o", **{"x-llmemo-ttl": "1h"})
    everything = entries(client)
    assert everything["namespace"] == "default" and everything["more"] is False
    assert sorted(e["model"] for e in everything["entries"]) == ["gpt-4o", "gpt-4o-mini"]
    for entry in everything["entries"]:
        assert entry["size"] > 100 and 0 <= entry["age"] < 60
        assert entry["key"].startswith("llmemo:default:0:x:{") and entry["tenant"]
    (tagged,) = entries(client, tag="faq")["entries"]
    assert tagged["model"] == "gpt-4o-mini" and tagged["tags"] == ["faq"]
    (hourly,) = entries(client, model="gpt-4o")["entries"]
    assert 0.9 * 3600 - 60 < hourly["ttl_left"] <= 1.1 * 3600  # the TTL has a +-10 % jitter
    assert entries(client, model="nothing-like-it")["entries"] == []
    assert entries(client, namespace="other")["entries"] == []


def test_entries_stop_at_the_limit_and_say_there_are_more(client: httpx.Client) -> None:
    for text in ("a", "b", "c"):
        ask(client, text)
    found = entries(client, limit=2)
    assert len(found["entries"]) == 2 and found["more"] is True


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"limit": "0"}, "limit must be"),
        ({"limit": "many"}, "limit must be"),
        ({"limit": "1001"}, "limit must be"),
        ({"namespace": "no spaces"}, "invalid namespace"),
        ({"model": "m" * 300}, "longer than"),
    ],
)
def test_bad_entry_queries_are_400_in_openai_shape(
    client: httpx.Client, query: dict[str, str], problem: str
) -> None:
    answer = client.get("/admin/entries", params=query, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert problem in answer.json()["error"]["message"]


def test_entries_need_the_admin_token(client: httpx.Client) -> None:
    assert client.get("/admin/entries").status_code == 401
    assert client.post("/admin/invalidate", json={"tag": "x"}).status_code == 401


# -- POST /admin/invalidate -------------------------------------------------------------------


def invalidate(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/admin/invalidate", json=body, headers=ADMIN)


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "gpt-4o"), ("tag", "faq"), ("tenant", None), ("key", None)],
)
def test_invalidating_by_each_filter_makes_the_next_request_a_miss(
    client: httpx.Client, field: str, value: str | None
) -> None:
    ask(client, "kept", "gpt-4o-mini")
    ask(client, "gone", "gpt-4o", **{"x-llmemo-tags": "faq"})
    assert ask(client, "gone", "gpt-4o") == "hit"
    if value is None:  # the tenant and the key as the entry list shows them
        (entry,) = entries(client, model="gpt-4o")["entries"]
        value = entry[field]
        if field == "tenant":  # both entries are this caller's
            assert entries(client, tenant=value)["entries"][1]
    answer = invalidate(client, {field: value})
    assert answer.status_code == 200, answer.text
    deleted = answer.json()["deleted"]
    assert deleted == (2 if field == "tenant" else 1)
    assert ask(client, "gone", "gpt-4o") == "miss"
    assert ask(client, "kept", "gpt-4o-mini") == ("miss" if field == "tenant" else "hit")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "give exactly one of"),
        ({"tag": "a", "model": "b"}, "give exactly one of"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"model": ""}, "non-empty string"),
        ({"model": 3}, "non-empty string"),
        ({"tag": "no spaces"}, "invalid tag"),
        ({"tag": "a", "namespace": "bad ns"}, "invalid namespace"),
        ({"key": "llmemo:default:meta"}, "not an entry key of this cache"),
        ({"key": "other:default:0:x:{" + "a" * 64 + "}"}, "not an entry key of this cache"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_invalidations_are_400_before_anything_is_deleted(
    client: httpx.Client, body: Any, problem: str
) -> None:
    ask(client, "stays")
    answer = invalidate(client, body)
    assert answer.status_code == 400
    assert problem in answer.json()["error"]["message"]
    assert ask(client, "stays") == "hit"


def test_a_body_that_is_not_json_is_400(client: httpx.Client) -> None:
    answer = client.post(
        "/admin/invalidate", content=b"tag=faq", headers={**ADMIN, "content-type": "text/plain"}
    )
    assert answer.status_code == 400 and "JSON object" in answer.json()["error"]["message"]
