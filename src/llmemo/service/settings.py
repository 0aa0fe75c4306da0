"""Service settings, parsed once: flags > environment > TOML file > defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from llmemo.core.durations import seconds
from llmemo.core.policy import TtlPolicy
from llmemo.core.request import check_name
from llmemo.core.sensitive import SensitivePolicy
from llmemo.core.verified import check_max_error, parse_judge
from llmemo.errors import ConfigError

Preset = Literal["demo", "openai", "anthropic", "providers"]
OPENAI_URL = "https://api.openai.com/v1"
ANTHROPIC_URL = "https://api.anthropic.com"


def _env(*names: str) -> AliasChoices:
    """The field's own name (flags, TOML) and then its environment variables, in priority order."""
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything `llmemo serve` can be told. Environment: `LLMEMO_<NAME>` unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="LLMEMO_",
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        case_sensitive=False,
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    store: str | None = Field(None, validation_alias=_env("LLMEMO_STORE", "REDIS_URL"))
    """Store URL; None means the embedded SQLite file (`llmemo.stores.base.default_url`)."""
    openai_base_url: str | None = Field(
        None, validation_alias=_env("openai_base_url", "OPENAI_BASE_URL")
    )
    anthropic_base_url: str | None = Field(
        None, validation_alias=_env("anthropic_base_url", "ANTHROPIC_BASE_URL")
    )
    upstream: Preset | None = None
    """A preset for both base URLs: `demo` (the local fake upstream), or the real providers."""
    namespace: str = "default"
    shared: bool = False
    """True: every caller shares every namespace's answers. False (default): one scope per
    credential, except in `shared_namespaces`."""
    shared_namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Namespaces whose answers every accepted caller shares, as in shared mode (the service's
    own namespace or `X-LLMemo-Namespace`); the others stay isolated per credential. Environment:
    comma-separated. `llmemo warm` reads it too, to store entries where the service reads them."""
    client_keys: SecretStr | None = None
    """Shared mode: the API keys allowed to use the cache (comma-separated; `sha256:HEX` gives a
    key by its digest). None (default): a caller's key is verified by the upstream instead."""
    shared_writers: SecretStr | None = None
    """Shared mode: the keys whose `Cache-Control: no-cache` may replace a shared entry (same
    form). None (default): nobody's; a caller's no-cache is answered fresh and not stored."""
    key_check_ttl: float = Field(300.0, gt=0)
    """Shared mode: seconds an upstream's verdict on a key is kept in process."""
    ttl: str | None = None
    """Default entry lifetime ("24h", "7d", seconds); None keeps the library default (24 h)."""
    max_ttl: str = "30d"
    """The longest lifetime an entry may have: `ttl`, `stale_grace`, a caller's `X-LLMemo-TTL`,
    `X-LLMemo-Stale-Grace` and `stale-while-revalidate` above it are refused (400), and tier TTLs
    are cut to it."""
    max_entry_bytes: int = Field(1024 * 1024, gt=0)
    """An answer whose stored entry (compressed) is bigger is served but not stored (skip reason
    `too_large`)."""
    max_model_labels: int = Field(100, ge=0)
    """Model names outside the price table that get their own `model` label in /metrics (the first
    ones seen); the others are counted under `other`."""
    stale_grace: str | None = None
    """Stale-while-revalidate: serve an entry this long past its TTL ("10m") as `stale` while one
    background call refreshes it; None (default) turns it off. Per request: `Cache-Control:
    stale-while-revalidate=SECONDS` or `X-LLMemo-Stale-Grace`."""
    near_ttl: str = "1s"
    """How long a hit's entry stays in this process's near cache ("1s"; "0" turns it off): a hot
    prompt then costs one store read per second instead of one per request. A change made by
    another instance (delete, refresh, invalidation) shows here within this time, as a namespace's
    new version does (docs/service.md)."""
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_header_bytes: int = Field(64 * 1024, gt=0)
    """Bytes a request's line and headers may take in all; more is answered 431."""
    header_timeout: float = Field(20.0, gt=0)
    """Seconds a request's headers may take to arrive (from the connection or the request's
    first byte); then 408 and the connection is closed."""
    body_timeout: float = Field(60.0, gt=0)
    """Seconds a request's body may take to arrive once its headers did; then 408 and the
    connection is closed."""
    timeout_keep_alive: int = Field(5, gt=0)
    """Seconds an idle keep-alive connection is kept open (uvicorn's)."""
    limit_concurrency: int = Field(1000, gt=0)
    """Connections (or requests in progress) a server process takes before answering new
    requests 503 (uvicorn's; per worker)."""
    connect_timeout: float = Field(10.0, gt=0)
    upstream_timeout: float = Field(600.0, gt=0)
    """Seconds to wait for each read from the upstream (a long generation can be slow)."""
    max_connections: int = Field(200, gt=0)
    """Pooled connections per provider."""
    ready_timeout: float = Field(1.0, gt=0)
    store_retry: float = Field(5.0, gt=0)
    """Seconds the service stops using a failing store before it tries it again (circuit breaker)."""
    stream_usage: bool = True
    """Ask OpenAI streams for their usage chunk (so entries carry token counts); hidden from
    clients that did not ask for it."""
    log_level: str = "info"
    workers: int = Field(1, ge=1)
    """Server processes (uvicorn workers) sharing the port. Each has its own connection pools and
    in-process single-flight; the store's lease makes a miss one upstream call across them. Use a
    shared store (Redis, or the SQLite file) with more than one: memory:// is per process."""
    gc_freeze: bool = True
    """After start-up, move every object alive then out of the garbage collector's view
    (`gc.freeze`, once per process). Requests that wait on the store keep their objects alive
    across many allocations, so the collector runs often; without this each full collection
    re-scans the whole imported heap (~50 ms each here, the service's p99). docs/service.md."""
    otel: bool = False
    """OpenTelemetry (extra `otel`): a span per request, in the caller's trace, and the /metrics
    figures through an OTel Meter (docs/service.md, "OpenTelemetry"). Off: no span is built."""
    # -- sensitive content (docs/privacy.md) --
    sensitive_skip: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Categories whose answers are served but never stored nor embedded, on top of the defaults
    (secrets and card numbers): email, phone, card, iban, ssn, api_key, aws_key, jwt, private_key,
    `secrets`, `personal`, `all`, or a custom pattern's name; `NAMESPACE:CATEGORY` for one
    namespace only. Environment: comma-separated."""
    sensitive_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Categories that may be stored after all (same names; `all` turns the check off)."""
    sensitive_patterns: dict[str, str] = Field(default_factory=dict)
    """Custom categories, name -> regex, skipped unless allowed. Environment: a JSON object."""
    # -- semantic layer (docs/semantic.md) --
    semantic: bool = False
    """Answer paraphrases too: exact miss -> embed -> KNN in the same context -> threshold -> guard."""
    semantic_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Cosine similarity in [0, 1] a match needs (1.0: exact only); None: the embedder's default."""
    semantic_embedder: str = "minilm"
    """Embedder spec: minilm (offline), openai:MODEL[@URL], ollama:MODEL[@URL]."""
    semantic_max_body_bytes: int = Field(256 * 1024, gt=0)
    """Requests with a larger body skip the semantic layer (exact lookup only), counted as
    `semantic_skipped:body_size`."""
    semantic_verifier: str | None = None
    """A chat model that must confirm borderline semantic matches (`llmemo.core.verify`), asked at
    the OpenAI base URL with `semantic_verifier_api_key`; None (default): no LLM check."""
    semantic_verifier_api_key: SecretStr | None = None
    semantic_hit_log: int = Field(1000, ge=0)
    """Served semantic hits kept per namespace for feedback (`GET /admin/semantic-hits`,
    `llmemo calibrate --from-feedback`); 0: none logged."""
    semantic_hit_log_ttl: float = Field(7 * 86400.0, gt=0)
    """Seconds a served semantic hit stays in that log."""
    semantic_max_error: float | None = None
    """Verified semantic hits (`llmemo.core.verified`): the largest share of wrong semantic hits
    accepted, in (0, 0.5]; candidates the learned bound does not cover go upstream and are judged.
    None (default): the threshold and the guard decide alone."""
    semantic_judge: str = "exact"
    """How verified hits compare a fresh answer with the cached one: exact, embedding[:X], llm
    (the `semantic_verifier` model)."""
    # -- /v1/warm and rate limits (docs/warm.md) --
    warm_token: SecretStr | None = None
    """Bearer token allowed to call /v1/warm."""
    qstash_current_signing_key: SecretStr | None = Field(
        None, validation_alias=_env("qstash_current_signing_key", "QSTASH_CURRENT_SIGNING_KEY")
    )
    qstash_next_signing_key: SecretStr | None = Field(
        None, validation_alias=_env("qstash_next_signing_key", "QSTASH_NEXT_SIGNING_KEY")
    )
    warm_url: str | None = None
    """Public URL of /v1/warm as QStash calls it (the signature's `sub`); default: the request's."""
    warm_openai_api_key: SecretStr | None = None
    warm_anthropic_api_key: SecretStr | None = None
    """API keys /v1/warm calls the providers with (the proxy forwards each caller's own)."""
    warm_rate_limit: str = "10/10 seconds"
    """/v1/warm requests per caller (the `limits` notation: "10/10 seconds", "100 per hour")."""
    miss_rate_limit: str | None = None
    """Upstream calls (cache misses) per tenant, e.g. "60/minute"; hits are never limited."""
    warm_concurrency: int = Field(8, gt=0)
    warm_background_from: int = Field(20, ge=0)
    """Batches with more items run as a job: 202, then GET /v1/warm/{id}."""
    warm_record_ttl: float = Field(3 * 86400.0, gt=0)
    """Seconds warm results (idempotency records, jobs) are kept."""
    # -- operators (docs/service.md, "Admin endpoints and dashboard") --
    admin_token: SecretStr | None = None
    """Bearer token of the operator's endpoints (/admin/..., /dashboard); None (default): they
    answer 401 and say how to set it."""
    # -- the dashboard's rollups (docs/service.md, "Rollups and /admin/stats") --
    dashboard: bool = True
    """Keep per-minute rollups of the answers in the store (for /admin/stats, /dashboard and
    `llmemo top`, across every instance sharing the store) and serve the operator's page at
    /dashboard (behind `admin_token`); off: nothing is counted or written, no /dashboard route."""
    dashboard_show_prompts: bool = False
    """Show the query and the matched prompt of recent semantic hits to the operator (prompts may
    be sensitive: off by default, the page then shows similarities and keys only)."""
    dashboard_retention: float = Field(7 * 86400.0, gt=0)
    """Seconds ("7d") the rollups are kept; their keys expire on their own."""
    dashboard_flush: float = Field(2.0, gt=0, le=60)
    """Seconds between two writes of an instance's rollups (one store call each)."""
    dashboard_max_names: int = Field(100, gt=0)
    """Namespaces, models and tenants counted by name per rollup bucket; the others as `other`."""
    dashboard_max_instances: int = Field(64, gt=0)
    """Service instances that can keep rollups in one store at once (a lane each)."""
    # -- encryption at rest (docs/privacy.md, needs the `crypto` extra) --
    encryption_keys: SecretStr | None = None
    """AES-256-GCM keys, `id:base64key,...` (32-byte keys): the first encrypts new entries, all
    decrypt; None (default): entries are stored in clear."""
    encryption_required: bool = False
    """With keys: a plaintext entry (written before encryption) is a miss instead of served."""

    @field_validator("dashboard_retention", "dashboard_flush", mode="before")
    @classmethod
    def _rollup_seconds(cls, value: Any) -> Any:
        return seconds(value) if isinstance(value, str) else value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_name("namespace", value)

    @field_validator("shared_namespaces", mode="before")
    @classmethod
    def _namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's form: "faq,docs"
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value  # pydantic says what is wrong
        return [
            check_name("namespace", name.strip()) if isinstance(name, str) else name
            for name in value
            if not isinstance(name, str) or name.strip()
        ]

    @field_validator("sensitive_skip", "sensitive_allow", mode="before")
    @classmethod
    def _categories(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's form: "email,faq:phone"
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value
        return [item.strip() if isinstance(item, str) else item for item in value if item != ""]

    @model_validator(mode="after")
    def _sensitive(self) -> Settings:
        self.sensitive_policy()  # ConfigError: an unknown category or a bad regex, at start
        return self

    def sensitive_policy(self) -> SensitivePolicy:
        """The do-not-cache policy these settings describe."""
        return SensitivePolicy.parse(
            self.sensitive_skip, self.sensitive_allow, self.sensitive_patterns
        )

    @field_validator("semantic_max_error")
    @classmethod
    def _max_error(cls, value: float | None) -> float | None:
        return None if value is None else check_max_error(value)  # ConfigError: one line

    @field_validator("semantic_judge")
    @classmethod
    def _judge_spec(cls, value: str) -> str:
        parse_judge(value)  # ConfigError: one line
        return value

    @model_validator(mode="after")
    def _judge(self) -> Settings:
        kind, _ = parse_judge(self.semantic_judge)
        if kind == "llm" and self.semantic_max_error is not None and not self.semantic_verifier:
            raise ConfigError("semantic_judge llm needs semantic_verifier (the model to ask)")
        return self

    @field_validator("client_keys", "shared_writers")
    @classmethod
    def _keys(cls, value: SecretStr | None) -> SecretStr | None:
        from llmemo.service.access import digests

        digests(value)  # a malformed `sha256:` item is an error at start
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from llmemo.core.crypto import parse_keys

            parse_keys(value.get_secret_value())  # ConfigError: one line, no key material
        return value

    @field_validator("ttl", "near_ttl", "stale_grace", "max_ttl")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            seconds(value)  # ConfigError (a ValueError): not a finite, non-negative duration
        return value

    @model_validator(mode="after")
    def _within_max_ttl(self) -> Settings:
        TtlPolicy.build(self.ttl, max_ttl=self.max_ttl)  # ConfigError: ttl over max_ttl
        if self.stale_grace is not None and seconds(self.stale_grace) > seconds(self.max_ttl):
            raise ValueError(f"stale_grace {self.stale_grace} is over max_ttl {self.max_ttl}")
        return self

    @field_validator("openai_base_url", "anthropic_base_url", "store", "warm_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if "://" not in value:
            raise ValueError(f"not a URL: {value!r}")
        return value if info.field_name == "store" else value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def shares(self, namespace: str | None) -> bool:
        """Every accepted caller shares this namespace's answers (None: the service's own)."""
        return self.shared or (namespace or self.namespace) in self.shared_namespaces

    @property
    def openai_url(self) -> str | None:
        """The OpenAI base URL in effect (a preset fills it in; `demo` is set by the CLI)."""
        if self.openai_base_url is None and self.upstream in ("openai", "providers"):
            return OPENAI_URL
        return self.openai_base_url

    @property
    def anthropic_url(self) -> str | None:
        if self.anthropic_base_url is None and self.upstream in ("anthropic", "providers"):
            return ANTHROPIC_URL
        return self.anthropic_base_url


def load_settings(config: str | Path | None = None, **flags: Any) -> Settings:
    """Settings from flags (None values are ignored), the environment and a TOML file.

    The file is `config`, else `$LLMEMO_CONFIG`; a named file that does not exist is an error.
    Raises ConfigError with one readable line for anything invalid.
    """
    path = config or os.environ.get("LLMEMO_CONFIG")
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return _FromFile(**given)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        problems.append(f"{where}: {error['msg']}")
    return "invalid settings: " + "; ".join(problems)
