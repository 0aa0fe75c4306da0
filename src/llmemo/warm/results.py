"""What a warm run did: one ItemResult per item, their Summary, and the finished Report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmemo.core.entry import Usage

Status = Literal["stored", "fresh", "failed"]


@dataclass(frozen=True)
class ItemResult:
    """What warming one item did. `usage`/`cost` are what the upstream call spent (0 if none)."""

    index: int
    status: Status
    key: str | None = None
    model: str | None = None
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.id is not None:
            data["id"] = self.id
        if self.key is not None:
            data["key"] = self.key
        if self.model is not None:
            data["model"] = self.model
        if self.reason is not None:
            data["reason"] = self.reason
        if self.usage.total:
            data["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            }
            data["cost_usd"] = round(self.cost, 8)
        return data


@dataclass
class Summary:
    """Totals of a warm run: stored, skipped (fresh), failed, and what the upstream calls spent."""

    total: int = 0
    stored: int = 0
    fresh: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, result: ItemResult) -> None:
        self.total += 1
        if result.status == "stored":
            self.stored += 1
        elif result.status == "fresh":
            self.fresh += 1
        else:
            self.failed += 1
        self.input_tokens += result.usage.input_tokens
        self.output_tokens += result.usage.output_tokens
        self.cost += result.cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "stored": self.stored,
            "skipped": self.fresh,
            "failed": self.failed,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.input_tokens + self.output_tokens,
            "cost_usd": round(self.cost, 6),
        }


@dataclass
class Report:
    """A finished (or stopped) run: the summary and each item's result, in input order."""

    summary: Summary
    results: list[ItemResult]
