"""Person names in messages: cue phrases plus a first-name and surname
gazetteer, columnar up to one decision per distinct candidate.

The gazetteer is Faker's person-name lists (about 31,000 first names and
30,000 surnames from 86 locales: Europe, the Americas, Africa, South and East
Asia in Latin script), read from the installed package in a quarter of a
second. ``names-dataset`` was considered and not taken: its wheel is 56 MB
and it took 11 s and 2 GB of memory to load here.

How a name is found (one regex pass, then one decision per distinct
candidate):

1. The texts are folded to ASCII one character for one, like every other
   analyzer, except that a non-ASCII capital becomes "X" (so "Élodie" still
   starts with a capital: "Xlodie"); the gazetteer is folded the same way.
2. One alternation finds runs of one to three capitalised words (particles
   such as "van der", "de la", "bin" allowed between them), each optionally
   after a cue:
   - strong: "my name is", "call me", "I go by", "known as";
   - title: Dr., Mr., Mrs., Ms., Mx., Prof., Miss, Nurse, Uncle...;
   - relation: "my son", "my therapist is", "her ex-husband", "our GP"...;
   - weak: "I'm", "I am", "this is", "hi", "dear", "thanks";
   - none: a bare run of capitalised words.
3. Each distinct (cue, words, sentence-initial, previous word) is decided
   in Python (a few thousand distinct candidates per million messages,
   cached):
   - strong cue: any capitalised word that is not a function word, day,
     month or kinship word;
   - title or relation, and "named"/"called": a gazetteer name, or a word
     that is not common English (VADER's lexicon plus scikit-learn's stop
     words plus the list below);
   - weak cue: a gazetteer first name that is not a common English word
     ("I'm Anxious" and "I'm Grace" both stay: the second is a miss);
   - no cue: two or more words, the first a gazetteer first name and the
     last a gazetteer surname or first name, not both common words ("Sarah
     Connor", "Will Smith"; not "Good Morning"); or a single gazetteer first
     name that is not a common word, not at the start of a sentence and not
     after "in", "to", "from", "at" (places).
   Trailing words that are common (days, "And"...) are dropped from a span.

Known misses: names in non-Latin scripts (folded to "x"), lower-case names,
names that are common words without a cue ("Grace", "Will" alone), single
names at the start of a sentence. Known false alarms: capitalised pairs of
gazetteer words that are a place or a brand ("Georgia Power").
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re

import polars as pl

from .patterns.folding import fold_ascii
from .patterns.spans import find_spans

NAMES_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "start": pl.Int32(),
    "end": pl.Int32(),
}

_TOKEN = r"(?:[A-Z]'|Mc|Mac|De|La|Le|Di|Da)?[A-Z][a-z]{1,24}(?:-[A-Z][a-z]{1,24})?"
_PARTICLE = r"(?:van der|van den|van de|van|von|de la|de los|del|de|della|di|da|du|dos|das|do|bin|binti|ibn|al|el|ben|ter|ten|le|la)"
_NAME = rf"{_TOKEN}(?: (?:{_PARTICLE} )?{_TOKEN}){{0,2}}"
_TITLES = (
    "Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "Rev", "Fr", "Sr", "Miss", "Doctor", "Professor", "Nurse", "Auntie",
    "Aunty", "Aunt", "Uncle", "Sister", "Father", "Pastor", "Rabbi", "Imam", "Coach", "Grandma", "Grandpa", "Nana",
)  # fmt: skip
_TITLE = r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof|Rev|Fr|Sr)\.?|(?:Miss|Doctor|Professor|Nurse|Auntie|Aunty|Aunt|Uncle|Sister|Father|Pastor|Rabbi|Imam|Coach|Grandma|Grandpa|Nana))"
_STRONG = r"my name is|my name's|name is|name's|call me|i go by|i'm called|i am called|known as|my names"
_NAMED = r"named|called|name"
_RELATION = (
    r"son|daughter|wife|husband|partner|boyfriend|girlfriend|fiance|fiancee|brother|sister|mum|mom|mother|dad"
    r"|father|stepdad|stepmum|stepmom|friend|best friend|bestie|therapist|counsellor|counselor|psychiatrist"
    r"|psychologist|doctor|gp|nurse|social worker|case worker|caseworker|boss|manager|teacher|coach|ex"
    r"|ex-husband|ex-wife|ex-boyfriend|ex-girlfriend|grandma|grandmother|gran|nan|grandpa|grandfather|aunt"
    r"|auntie|uncle|cousin|niece|nephew|colleague|coworker|co-worker|neighbour|neighbor|roommate|flatmate"
    r"|housemate|child|kid|baby|toddler|stepson|stepdaughter|sibling|twin|pastor|priest|sponsor|landlord"
    r"|carer|caregiver|mentor|tutor|classmate|bully|abuser|dog|cat"
)
_WEAK = r"i'm|i am|im|this is|it's|hi|hello|hey|dear|thanks|thank you|love|cheers"
_CUED = (
    rf"(?i:{_STRONG})[ ,:]{{1,3}}(?:{_TITLE} )?{_NAME}"
    rf"|(?i:{_NAMED}) (?:{_TITLE} )?{_NAME}"
    rf"|(?:{_TITLE}) {_NAME}"
    rf"|(?i:my|our|his|her|their|your) (?:(?i:late|older|younger|little|big|eldest|youngest|baby|new|best|old|twin) ){{0,2}}"
    rf"(?i:{_RELATION})(?:,? (?i:is called|is named|named|called|is|was))?,? (?:{_TITLE} )?{_NAME}"
    rf"|(?i:{_WEAK}),? (?:{_TITLE} )?{_NAME}"
)
_REGEX = rf"(?-u:\b)(?:{_CUED}|{_NAME})(?-u:\b)"
# Recognise which cue a matched text starts with (Python re, on distinct texts).
_CUE_KINDS = (
    ("strong", rf"(?i:{_STRONG})[ ,:]"),
    ("named", rf"(?i:{_NAMED}) "),
    ("title", rf"(?:{_TITLE}) "),
    ("relation", rf"(?i:my|our|his|her|their|your) (?:(?i:late|older|younger|little|big|eldest|youngest|baby|new|best|old|twin) ){{0,2}}(?i:{_RELATION})(?=[ ,])"),
    ("weak", rf"(?i:{_WEAK}),? "),
)

# Names that are also ordinary English words (or words capitalised at the
# start of a sentence) beyond the VADER lexicon and the stop words.
_COMMON_EXTRA = """
will may june april august mark bill rose frank art dawn summer autumn winter spring hope faith joy grace
honey angel amber crystal ivy holly daisy lily iris violet ruby pearl jade sunny sky rain storm river
christian hunter guy pat rich young long man son an ha ma do le so hu ho ki ok sung king star chance
patience precious happy lucky major deacon bishop
today yesterday tomorrow tonight maybe sometimes honestly okay ok yeah yes no last every recently also
still just then when what why how where who which because though although however anyway well so but
and or if since after before during until while once again already always never often usually
monday tuesday wednesday thursday friday saturday sunday january february march july september october
november december christmas easter ramadan eid diwali hanukkah thanksgiving halloween god lord jesus allah
mum mom dad mother father son daughter brother sister wife husband partner friend nan gran grandma grandpa
english french german spanish italian chinese indian african american british irish scottish welsh
covid zoom google instagram facebook twitter tiktok snapchat whatsapp netflix youtube reddit discord
therapy therapist doctor nurse hospital school college university work church mosque temple
anxious depressed sad angry tired lonely scared worried stressed overwhelmed numb lost hurt sorry fine good
great glad new old big little first second next other another some any many much more most less least
hi hello hey dear thanks thank please sorry welcome morning evening night afternoon day week month year
i me my mine we us our you your he him his she her they them their it its this that these those there here
""".split()
# Words never taken as a name even after a strong cue.
_NEVER = frozenset(
    """i the a an and or but so my your his her our their me you he she it we they this that is was not no
    yes just really very too also still monday tuesday wednesday thursday friday saturday sunday january
    february march april may june july august september october november december god mum mom dad mother
    father son daughter brother sister wife husband partner friend ok okay sorry hi hello hey""".split()
)
# After a sentence-initial word, these mark an imperative ("Skip your
# evening dose", "Mark the date"), not a name and its verb.
_OBJECT_WORDS = frozenset({"your", "the", "a", "an", "my", "it", "this", "that", "them", "him", "her", "me", "us",
                           "up", "out", "off", "down", "in", "on", "to", "for", "with", "some", "any", "all"})  # fmt: skip
_PLACE_WORDS = frozenset({"in", "from", "at", "near", "visit", "visited", "visiting", "into", "of"})
# "to" is a place after a verb of motion ("went to Paris"), not after "talked to".
_MOTION = frozenset({"went", "moved", "go", "going", "goes", "gone", "come", "came", "coming", "back", "flew", "fly",
                     "drove", "drive", "travelled", "traveled", "trip", "holiday", "move", "moving", "way", "get",
                     "got", "return", "returned", "relocated", "walked", "walk", "ran", "run"})  # fmt: skip


def fold_names(texts: pl.Series) -> pl.Series:
    """The folded texts the name pass runs on: as :func:`.fold_ascii`, with
    non-ASCII capitals as "X" (one character for one)."""
    texts = texts.cast(pl.String).fill_null("")
    non_ascii = (texts.str.len_bytes() != texts.str.len_chars()).arg_true()
    if len(non_ascii):
        fixed = texts.gather(non_ascii).str.replace_all(r"[\p{Lu}\p{Lt}&&[^\x00-\x7f]]", "X")
        texts = texts.clone().scatter(non_ascii, fixed)
    return fold_ascii(texts)[0]


def _person_lists() -> tuple[set[str], set[str]]:
    from faker.providers import person

    first: set[str] = set()
    last: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attr in dir(provider):
            values = getattr(provider, attr, None)
            if not isinstance(values, tuple | list | dict):
                continue
            if attr.startswith("first_name"):
                first.update(v for v in values if isinstance(v, str))
            elif attr.startswith("last_name"):
                last.update(v for v in values if isinstance(v, str))
    return first, last


@functools.cache
def gazetteer() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, surnames, common English words), folded like the texts;
    names are title-case, words lower-case."""
    first, last = _person_lists()

    def folded(names: set[str]) -> frozenset[str]:
        clean = sorted(n for n in names if n[:1].isupper() and " " not in n)
        return frozenset(fold_names(pl.Series(clean, dtype=pl.String)).to_list())

    common = set(_COMMON_EXTRA)
    try:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        common |= set(ENGLISH_STOP_WORDS)
    except ImportError:  # pragma: no cover - scikit-learn is a core dependency
        pass
    common |= _vader_words()
    common |= _place_words()
    return folded(first), folded(last), frozenset(common)


def _place_words() -> set[str]:
    """Country, US state and British county names (Faker's address lists):
    "Ireland", "Georgia" and "Kent" are places before they are names."""
    from faker.providers.address.en import Provider as English
    from faker.providers.address.en_GB import Provider as British
    from faker.providers.address.en_US import Provider as American

    names = [*English.countries, *American.states, *getattr(British, "counties", ())]
    return {word.lower() for name in names for word in name.split() if len(word) > 2}


def _vader_words() -> set[str]:
    from importlib import resources

    try:
        text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError):  # pragma: no cover - vaderSentiment is a core dependency
        return set()
    return {line.split("\t", 1)[0] for line in text.splitlines() if line[:1].isalpha()}


@functools.cache
def _cue_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    import re

    return tuple((kind, re.compile(p)) for kind, p in _CUE_KINDS)


@functools.cache
def _title_prefix() -> re.Pattern[str]:
    import re

    return re.compile(rf"(?:{_TITLE}) ")


def _cue_of(text: str) -> tuple[str, int]:
    """The cue ``text`` starts with and where it ends ("none", 0 without one)."""
    for kind, pattern in _cue_patterns():
        m = pattern.match(text)
        if m:
            return kind, m.end()
    return "none", 0


@functools.lru_cache(maxsize=200_000)
def decide(text: str, initial: bool, previous: str) -> tuple[int, int] | None:
    """(offset, length) of the name inside the matched ``text``, or None when
    it is not taken as a name (rules: module docstring)."""
    cue, start = _cue_of(text)
    # After the cue: a relation's verb ("is called"), a comma, then a title.
    rest = text[start:]
    skip = len(rest) - len(rest.lstrip(" ,"))
    start += skip
    name = rest[skip:]
    while True:
        m = _title_prefix().match(name)
        if cue == "relation" and m is None:
            # "my son is called Tom": skip lower-case words up to the name.
            m = re.match(r"[a-z][a-z'-]*,? ", name)
        if m is None:
            break
        if name[:1].isupper():
            cue = "title"
        start += m.end()
        name = name[m.end():]
    first_names, surnames, common = gazetteer()
    words = name.split(" ")
    # Drop trailing capitalised words that are common ("Jane Smith Thursday").
    while len(words) > 1 and (words[-1].lower() in common or words[-1].lower() in _NEVER):
        words.pop()
    while words and words[0] in _TITLES:
        start += len(words[0]) + 1
        words.pop(0)
    if not words:
        return None
    caps = [w for w in words if w[:1].isupper()]
    head = caps[0]
    lower = head.lower()
    known = head in first_names or head in surnames
    is_common = lower in common
    if lower in _NEVER:
        return None
    if cue == "strong":
        ok = True
    elif cue in ("title", "relation", "named"):
        ok = known or not is_common
    elif cue == "weak":
        ok = head in first_names and not is_common
        if not ok and len(caps) >= 2:
            ok = _pair(caps, first_names, surnames, common)
    elif len(caps) >= 2:
        ok = _pair(caps, first_names, surnames, common)
        if not ok and not initial:
            # "I told Priya Monday": the first word alone may still be a name.
            words = caps = [head]
            ok = _single(head, initial, previous, first_names, common)
    else:
        ok = _single(head, initial, previous, first_names, common)
    if not ok:
        return None
    return start, len(" ".join(words))


def _single(head: str, initial: bool, previous: str, first_names: frozenset[str], common: frozenset[str]) -> bool:
    # At the start of a sentence any word is capitalised: there a single
    # word must be a gazetteer name of three letters or more (not "Al").
    words = previous.split(" ")
    place = words[-1] in _PLACE_WORDS or (words[-1] == "to" and words[0] in _MOTION)
    if head not in first_names or head.lower() in common or place:
        return False
    return not initial


def _pair(caps: list[str], first_names: frozenset[str], surnames: frozenset[str], common: frozenset[str]) -> bool:
    head, tail = caps[0], caps[-1]
    if head not in first_names:
        return False
    if tail not in surnames and tail not in first_names:
        # An unlisted surname ("Hiroshi Sato") after a first name that is not
        # a common word.
        return head.lower() not in common and tail.lower() not in common
    return not (head.lower() in common and tail.lower() in common)


def name_spans(texts: pl.Series) -> pl.DataFrame:
    """Person-name spans (:data:`NAMES_SCHEMA`, character offsets) in ``texts``."""
    empty = pl.DataFrame(schema=NAMES_SCHEMA)
    if not len(texts):
        return empty
    folded = fold_names(texts)
    spans = find_spans(folded, _REGEX, "pii_names")
    if not len(spans):
        return empty
    # Byte slices of the ASCII folded text: str.slice walks each text from
    # its start, quadratic over the many spans of one long message.
    source = folded.cast(pl.Binary).gather(spans["row"])
    lo = (spans["start"] - 24).clip(lower_bound=0)
    pre = source.bin.slice(lo, spans["start"] - lo).cast(pl.String)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
    post = source.bin.slice(spans["end"], pl.Series([8] * len(spans), dtype=pl.Int32)).cast(pl.String)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
    spans = spans.with_columns(
        initial=pre.str.contains(r"(?:^|[.!?:;\n*(\"-])[ \t\"']*$"),
        previous=pre.str.extract(r"((?:[A-Za-z']+ )?[A-Za-z']+)[ \t]*$", 1).str.to_lowercase().fill_null(""),
        # A bare word at a sentence start is a name only before a lower-case word ("Rebecca said").
        verb_next=post.str.contains(r"^ [a-z]")
        & ~post.str.extract(r"^ ([a-z]+)", 1).is_in(sorted(_OBJECT_WORDS)).fill_null(False),
    )
    keys = spans.select("text", "initial", "previous", "verb_next").unique()
    # One Python decision per distinct candidate (module docstring, step 3).
    decided = [decide(t, i and not v, p) for t, i, p, v in keys.iter_rows()]
    keys = keys.with_columns(
        offset=pl.Series([d[0] if d else None for d in decided], dtype=pl.Int32),
        length=pl.Series([d[1] if d else None for d in decided], dtype=pl.Int32),
    )
    spans = spans.join(keys, on=["text", "initial", "previous", "verb_next"], how="inner").drop_nulls("offset")
    return spans.select(
        "row",
        (pl.col("start") + pl.col("offset")).cast(pl.Int32).alias("start"),
        (pl.col("start") + pl.col("offset") + pl.col("length")).cast(pl.Int32).alias("end"),
    ).sort("row", "start")
