"""The caching service (`llmemo serve`): an OpenAI- and Anthropic-compatible proxy over the cache."""

from llmemo.errors import require

for _module in ("starlette", "uvicorn", "httpx", "pydantic_settings", "prometheus_client"):
    require(_module, "server")

from llmemo.service.app import create_app  # noqa: E402
from llmemo.service.controls import tenant_id  # noqa: E402
from llmemo.service.settings import Settings, load_settings  # noqa: E402

__all__ = ["Settings", "create_app", "load_settings", "tenant_id"]
