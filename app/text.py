"""Quoting what a request sent, in a message or in the log: one helper, ``excerpt``, used everywhere.

A visitor's text (a slider name, a prompt, a file name, a recipe field) may be megabytes long, hold NUL bytes, newlines
or markup. A message quotes at most ``EXCERPT`` characters of it, with control characters escaped (``\\x00``,
``\\n``) and ``< > &`` as HTML entities (Gradio shows error messages as HTML), so that one message is one short line
that no other page renders as markup. No torch, no gradio here.
"""

from __future__ import annotations

import html
import json

EXCERPT = 40  # characters of a visitor's text quoted in a message or a log line


def excerpt(value, limit: int = EXCERPT) -> str:
    """``value`` as a short, escaped, quoted excerpt: ``'abc'``, ``'a very long na… (1048576 characters)'``."""
    text = value if isinstance(value, str) else repr(value)
    n = len(text)
    cut = text[:limit]
    out = html.escape(escape_controls(cut), quote=False)
    if n > limit:
        out += f"… ({n} characters)"
    return f"'{out}'"


def escape_controls(text: str) -> str:
    """Control and other non-printable characters as escapes (``\\x00``, ``\\n``, ``\\u202e``); the rest unchanged."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def log_safe(text, limit: int = 300) -> str:
    """A log line's worth of ``text``: non-printable characters escaped (one line, no raw NUL), at most ``limit``
    characters."""
    text = escape_controls(str(text))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def parse_json(text: str, what: str, error: type[Exception] = ValueError, **kw):
    """``json.loads`` with the guards a visitor's JSON needs: nesting too deep for the parser (RecursionError) and
    malformed JSON both become ``error`` naming ``what`` ('the recipe', 'edits'), with at most a short excerpt of the
    parser's message."""
    try:
        return json.loads(text, **kw)
    except RecursionError:
        raise error(f"{what} is nested too deeply to be read") from None
    except ValueError as e:
        raise error(f"{what} is not valid JSON ({log_safe(e, 80)})") from None
