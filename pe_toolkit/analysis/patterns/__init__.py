"""Lexicons (``lexicons/*.toml``) compiled to one regex per family, and their
matches found in a column of texts, columnar.

Helpers of the empathy, skills, safety and PII analyzers. The pattern syntax
is described in ``lexicons/README.md``. Import from the module that holds a
name; this package re-exports nothing.

- :mod:`.folding`: texts folded to ASCII, one character for one;
- :mod:`.translate`: a lexicon pattern rewritten for polars' regex engine;
- :mod:`.lexicon`: lexicon files read, macro-expanded and validated;
- :mod:`.matcher`: a family's entries as one regex, and back from a match
  to its entry;
- :mod:`.spans`: every match with its offsets, and the text around it;
- :mod:`.context`: the clause or sentence around a match, content words;
- :mod:`.codes`: code sets per row as bit masks.

How a family is matched (one regex pass, whatever the number of entries):

1. :func:`.folding.fold_ascii` maps typographic quotes, dashes and exotic
   spaces to ASCII, other letters to "x" and anything else to a space, one
   character for one.
   The folded text is pure ASCII, so byte offsets are character offsets, and
   offsets into it are offsets into the original message.
   Case-insensitive families match the folded text lower-cased (ASCII, so
   still one character for one) with lower-cased patterns: the regex engine
   runs a Unicode case-insensitive alternation about 30 times slower.
2. :func:`.spans.find_spans` runs the family's alternation once, with
   ``str.replace_all`` wrapping every match in two one-byte markers; the
   markers' byte positions (``str.find_many``, a memchr scan) give each
   match's start and end, which numpy turns into offsets into the unmarked
   text. Polars has no "find all with positions" for regexes; this is one
   regex pass where extract-then-locate would be two. Large inputs are cut in
   two halves matched on two threads (polars releases the GIL).
3. :meth:`.matcher.Matcher.classify` maps each matched text back to the entry
   that produced it: the first entry, in priority order, whose pattern
   matches the whole text. That is a Python ``re.fullmatch`` per *distinct*
   matched text (a few thousand phrasings, cached across calls), then a hash
   lookup per match, never a loop over messages.
"""
