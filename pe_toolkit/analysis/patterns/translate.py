"""A lexicon pattern (Python ``re`` syntax, ``lexicons/README.md``) rewritten
for where it runs: lower-cased text, polars' regex engine on ASCII text,
literal spaces as whitespace runs."""

from __future__ import annotations

# Word boundaries in ASCII mode: the folded text is ASCII, and Unicode \b would
# keep the regex engine off its fast DFA path.
ASCII_BOUNDARY = r"(?-u:\b)"


def lower_pattern(pattern: str) -> str:
    """A pattern for lower-cased text: letters lower-cased, escapes (``\\S``,
    ``\\B``...) left alone."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        else:
            out.append(ch.lower())
    return "".join(out)


_RUST_CLASS = {"s": " \\t\\r\\n", "d": "0-9", "w": "A-Za-z0-9_"}


def rust_pattern(pattern: str, *, python: bool = False) -> str:
    """The pattern as polars runs it: the same language, with every class
    limited to ASCII (the texts are folded to ASCII). Unicode ``\\w``, ``\\s``,
    ``\\b``, ``(?i:...)`` and negated classes make the regex automaton tens of
    times larger and the lazy DFA thrash; Python's ``re`` (classification)
    keeps the original spelling, which means the same on ASCII text but for
    ``\\s``, which there also matches a vertical tab and a form feed.
    ``python=True`` gives the same classes in Python's syntax, for a scan
    that must find what polars finds (``Matcher.whole``)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        if ch == "\\" and nxt:
            if nxt in _RUST_CLASS:
                out.append(_RUST_CLASS[nxt] if in_class else f"[{_RUST_CLASS[nxt]}]")
            elif nxt == "b" and not in_class:
                out.append("\\b" if python else "(?-u:\\b)")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            if nxt == "^":
                # A negated class stays inside ASCII.
                out.append("[^\\x80-\\U0010ffff" if python else "[^\\x{80}-\\x{10FFFF}")
                i += 2
                continue
            out.append(ch)
        elif pattern.startswith("(?i:", i):
            out.append("(?i:" if python else "(?i-u:")
            i += 4
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def spaces_to_runs(pattern: str) -> str:
    """A space outside a character class matches any run of whitespace,
    and a space marked optional (" ?") an optional run: "weed
    ?killer" is "weedkiller" or "weed killer". (Until safety v14 " ?" was
    read as a run made lazy, so the entries that meant an optional space,
    "weed ?killer", "light ?headed", "can(?:'?t| ?not)", missed the form
    without one.)"""
    out: list[str] = []
    space = "[ \\t\\r\\n]"
    in_class = escaped = optional = False
    for ch in pattern:
        if optional:
            optional = False
            if ch == "?":
                out.append(f"{space}*?")
                continue
            out.append(f"{space}+")
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        elif in_class:
            out.append(ch)
            in_class = ch != "]"
        elif ch == "[":
            out.append(ch)
            in_class = True
        elif ch == " ":
            optional = True  # a run, or an optional run if "?" follows
        else:
            out.append(ch)
    if optional:
        out.append(f"{space}+")
    return "".join(out)
