"""Redis' glob (SCAN MATCH) as a regex, for the stores that match keys themselves."""

from __future__ import annotations

import re


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching exactly what Redis' glob matches: `*`, `?`, `[^a-z]`, `\\x`; braces are literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[":
            i, group = _glob_set(pattern, i + 1)
            out.append(group)
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _glob_set(pattern: str, i: int) -> tuple[int, str]:
    """Translate a `[...]` set starting after `[`; returns the index of its `]` and the regex."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    i += negate
    parts: list[str] = []
    while i < n and pattern[i] != "]":
        if pattern[i] == "\\" and i + 1 < n:
            i += 1
            parts.append(re.escape(pattern[i]))
        elif i + 2 < n and pattern[i + 1] == "-":
            low, high = sorted((pattern[i], pattern[i + 2]))  # Redis accepts reversed ranges
            parts.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 2
        else:
            parts.append(re.escape(pattern[i]))
        i += 1
    if not parts:
        return i, "." if negate else "(?!)"
    return i, f"[{'^' if negate else ''}{''.join(parts)}]"
