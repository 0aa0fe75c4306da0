"""OpenAI Responses API streams (response.created ... response.completed): assemble, replay."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmemo.core.sse import IncompleteStreamError

JSON = dict[str, Any]

# The events that end a Responses stream (it has no `data: [DONE]`).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def assemble_response(events: Iterable[Mapping[str, Any]]) -> JSON:
    """The Responses API `response` a stream adds up to: its terminal event's, with the output
    items the stream finished when that response omits them."""
    final: JSON | None = None
    items: dict[int, Any] = {}
    for event in events:
        kind = event.get("type")
        if kind == "response.output_item.done":
            items[event.get("output_index", len(items))] = event.get("item")
        elif kind in TERMINAL_EVENTS and isinstance(event.get("response"), Mapping):
            final = dict(event["response"])
    if final is None:
        raise IncompleteStreamError("the stream has no response.completed event")
    if not final.get("output") and items:
        final["output"] = [items[index] for index in sorted(items)]
    return final


def _whole(text: str) -> list[str]:
    return [text] if text else []


_TERMINAL_OF_STATUS = {"incomplete": "response.incomplete", "failed": "response.failed"}


def response_events(
    response: Mapping[str, Any], split: Callable[[str], list[str]] = _whole
) -> list[JSON]:
    """The Responses API events (response.created ... response.completed) that stream `response`;
    `split` cuts text and arguments into deltas (one delta each by default)."""
    opening = {**response, "status": "in_progress", "output": [], "usage": None, "error": None,
               "incomplete_details": None}  # fmt: skip
    if "completed_at" in response:
        opening["completed_at"] = None
    events: list[JSON] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
    ]
    for index, item in enumerate(response.get("output") or ()):
        events += _item_events(index, item, split)
    terminal = _TERMINAL_OF_STATUS.get(str(response.get("status")), "response.completed")
    events.append({"type": terminal, "response": dict(response)})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def _item_events(
    index: int, item: Mapping[str, Any], split: Callable[[str], list[str]]
) -> list[JSON]:
    """One output item's events: added, its content or arguments as deltas, done."""
    kind, where = item.get("type"), {"item_id": item.get("id"), "output_index": index}
    opening: Mapping[str, Any] = item
    events: list[JSON] = []
    if kind == "message":
        opening = {**item, "status": "in_progress", "content": []}
        for number, part in enumerate(item.get("content") or ()):
            events += _part_events({**where, "content_index": number}, part, split)
    elif kind == "function_call":
        opening = {**item, "status": "in_progress", "arguments": ""}
        arguments = str(item.get("arguments") or "")
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": piece}
                   for piece in split(arguments)]  # fmt: skip
        events.append(
            {"type": "response.function_call_arguments.done", **where, "arguments": arguments}
        )
    added = {"type": "response.output_item.added", "output_index": index, "item": opening}
    done = {"type": "response.output_item.done", "output_index": index, "item": dict(item)}
    return [added, *events, done]


def _part_events(
    where: Mapping[str, Any], part: Mapping[str, Any], split: Callable[[str], list[str]]
) -> list[JSON]:
    """A message content part: added (empty), its text or refusal as deltas, done (whole)."""
    kind = part.get("type")
    field = {"output_text": "text", "refusal": "refusal"}.get(str(kind))
    opening: JSON = dict(part)
    deltas: list[JSON] = []
    if field == "text":
        opening.update(text="", annotations=[], **({"logprobs": []} if "logprobs" in part else {}))
        text = str(part.get("text") or "")
        deltas = [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                  for piece in split(text)]  # fmt: skip
        deltas.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    elif field == "refusal":
        opening["refusal"] = ""
        refusal = str(part.get("refusal") or "")
        deltas = [{"type": "response.refusal.delta", **where, "delta": piece}
                  for piece in split(refusal)]  # fmt: skip
        deltas.append({"type": "response.refusal.done", **where, "refusal": refusal})
    return [
        {"type": "response.content_part.added", **where, "part": opening},
        *deltas,
        {"type": "response.content_part.done", **where, "part": dict(part)},
    ]
