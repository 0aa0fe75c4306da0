"""What an answer cost, from a per-model price table (USD per million tokens), overridable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llmemo.core.entry import Usage


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float


# List prices as published by the providers (late 2025). Model names match by longest prefix,
# so "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini". Override with Cache(prices=...).
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.0),
    "gpt-5-mini": Price(0.25, 2.0),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-4.1": Price(2.0, 8.0),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.0),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4-turbo": Price(10.0, 30.0),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o1": Price(15.0, 60.0),
    "o3": Price(2.0, 8.0),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-haiku-4": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.80, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}


def price_of(model: str | None, prices: Mapping[str, Price]) -> Price | None:
    """The price of the longest table entry that the model name starts with."""
    if not model:
        return None
    best = None
    for name in prices:
        if model.startswith(name) and (best is None or len(name) > len(best)):
            best = name
    return prices[best] if best is not None else None


def cost(model: str | None, usage: Usage, prices: Mapping[str, Price] = DEFAULT_PRICES) -> float:
    """USD that the usage cost at list price (0.0 for a model not in the table)."""
    price = price_of(model, prices)
    if price is None:
        return 0.0
    return (usage.input_tokens * price.input + usage.output_tokens * price.output) / 1_000_000


class PriceMemo:
    """`cost` with each model's rates looked up once (the hit path prices every hit). Bounded:
    emptied when it holds `max_models` names (model names come from requests)."""

    def __init__(self, prices: Mapping[str, Price] = DEFAULT_PRICES, max_models: int = 4096):
        self.prices = prices
        self.max_models = max_models
        self._rates: dict[str | None, tuple[float, float]] = {}  # model -> $/M (input, output)

    def cost(self, model: str | None, usage: Usage) -> float:
        """USD that the usage cost at list price, as `cost(model, usage, prices)`."""
        rates = self._rates.get(model)
        if rates is None:
            if len(self._rates) >= self.max_models:
                self._rates.clear()
            price = price_of(model, self.prices)
            rates = (0.0, 0.0) if price is None else (price.input, price.output)
            self._rates[model] = rates
        return (usage.input_tokens * rates[0] + usage.output_tokens * rates[1]) / 1_000_000
