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
   - sign-off: "Love,\\nSarah", "Cheers,\\nmarta", "- Sarah" ending the message;
   - none: a bare run of capitalised words.
   After a name-giving cue ("my name is", "call me", "I'm", "this is") or a
   sign-off, one lower-case word is a candidate too ("my name is jake").
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
   - sign-off: a gazetteer first name (common words too: "Love,\\nGrace") or
     a capitalised word that is not common English; after a dash, a gazetteer
     first name or surname;
   - a lower-case word (after a name-giving cue or a sign-off): a gazetteer
     first name of three letters or more that is not a common word ("i'm
     jake", not "i'm tired", "call me crazy");
   - no cue: two or more words, the first a gazetteer first name and the
     last a gazetteer surname or first name, not both common words ("Sarah
     Connor", "Will Smith"; not "Good Morning"); or a single gazetteer first
     name that is not a common word and not after "in", "to", "from", "at"
     (places); at the start of a sentence only with three letters or more
     and before a verb ("Rebecca said", "David and I"; not "Ah i see", "Rock
     climbing helps", "Skip your dose").
   Never a name: a word before "'t" ("I Don't Know"), interjections ("Ah",
   "Oh", "Lol"), helplines and organisations ("Trevor Project",
   "Samaritans", a run with "Project", "Foundation", "Line"... after its
   first word), a run after an article ("an Avis rental"). A capitalised
   function word starting a sentence is skipped ("Then Tomasz told me").
   An unlisted word after a first name is a surname unless it is shaped
   like an English derived word ("Loan Passed", "Royal Commission").
   Trailing words that are common (days, "And"...) are dropped from a span.
   Common English: VADER's lexicon, scikit-learn's stop words, Faker's
   English lorem word list (about 1,000 everyday words: "rock", "job",
   "bank"), places, the list below; a plural of one counts ("Banks").

Known misses: names in non-Latin scripts (folded to "x"), lower-case names
without a name-giving cue or sign-off, names that are common words without
a cue ("Grace", "Will" alone), single names at the start of a sentence not
followed by a verb ("Sarah wtf"). Known false alarms: capitalised pairs of
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
# Cues after which a lower-case word may be a name: the person gives it.
_INTRO = rf"{_STRONG}|i'm|i am|im|this is"
_LOWER = r"[a-z]{3,25}"
# Closing words of a message before a name on its own line.
_SIGNOFF_WORDS = (
    r"love|lots of love|all my love|cheers|thanks|thanks again|thank you|best|best wishes|regards|kind regards"
    r"|warm regards|all the best|take care|xoxo|xx|hugs|yours|sincerely|peace"
)
# A sign-off or a dash, then a name, then the end of the message (a few
# spaces or "." / "!" allowed): "Love,\nSarah", "thanks all\n- Sarah".
_SIGNOFF = (
    rf"(?-u:\b)(?i:{_SIGNOFF_WORDS})[,.!]?[ \t]{{0,3}}\r?\n[ \t\r\n]{{0,4}}(?:{_NAME}|{_LOWER})[ \t\r\n.!]{{0,4}}$"
    rf"|-{{1,2}}[ \t]{{0,2}}(?:{_NAME}|{_LOWER})[ \t\r\n.!]{{0,4}}$"
)
_CUED = (
    rf"(?i:{_STRONG})[ ,:]{{1,3}}(?:{_TITLE} )?{_NAME}"
    rf"|(?i:{_NAMED}) (?:{_TITLE} )?{_NAME}"
    rf"|(?:{_TITLE}) {_NAME}"
    rf"|(?i:my|our|his|her|their|your) (?:(?i:late|older|younger|little|big|eldest|youngest|baby|new|best|old|twin) ){{0,2}}"
    rf"(?i:{_RELATION})(?:,? (?i:is called|is named|named|called|is|was))?,? (?:{_TITLE} )?{_NAME}"
    rf"|(?i:{_WEAK}),? (?:{_TITLE} )?{_NAME}"
    rf"|(?i:{_INTRO})[ ,:]{{1,3}}{_LOWER}"
)
# Sign-offs first: at the same position "Love" alone would be a bare word.
_REGEX = rf"{_SIGNOFF}|(?-u:\b)(?:{_CUED}|{_NAME})(?-u:\b)"
# Recognise which cue a matched text starts with (Python re, on distinct texts).
_CUE_KINDS = (
    ("signoff", rf"(?i:{_SIGNOFF_WORDS})[,.!]?[ \t]*\r?\n[ \t\r\n]*"),
    ("dash", r"-{1,2}[ \t]*"),
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
patience precious happy lucky major deacon bishop doc boss
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
# Words never taken as a name even after a strong cue; the second half are
# interjections ("Ah i see" was [NAME] in 7 of 18 names found in ESConv).
_NEVER = frozenset(
    """i the a an and or but so my your his her our their me you he she it we they this that is was not no
    yes just really very too also still monday tuesday wednesday thursday friday saturday sunday january
    february march april may june july august september october november december god mum mom dad mother
    father son daughter brother sister wife husband partner friend ok okay sorry hi hello hey
    ah ahh ahhh aah aha oh ohh ooh oooh uh uhh um umm hmm hmmm hm mm mmm er erm eh aw aww awww ha haha hahaha
    heh hehe lol lmao omg wow yay ugh yo oops whoa welp meh nah yep yup yeah alright sure bye huh phew gosh
    damn dang jeez geez wtf idk tbh imo btw fyi ty np xd xo xx""".split()
)
# Helplines and support organisations (lower case, as runs of capitalised
# words): public services a reply should keep ("Trevor Project: 1-866-...").
_HELPLINES = frozenset(
    {"trevor project", "the trevor project", "samaritans", "crisis text line", "lifeline", "trans lifeline",
     "kids helpline", "childline", "beyond blue", "befrienders", "befrienders worldwide", "befrienders kenya",
     "papyrus", "shout", "mind", "rethink", "rethink mental illness", "nami", "samhsa", "veterans crisis line",
     "kooth", "headspace", "sane", "sane australia", "sos amitie", "telefonseelsorge", "aasra", "vandrevala",
     "icall", "sadag", "kids help phone", "talk suicide canada", "pieta", "pieta house", "young minds",
     "youngminds", "hopeline", "hopelineuk", "hope line", "calm", "the mix", "jigsaw", "crisis line",
     "suicide hotline", "national suicide prevention lifeline", "lifeline australia", "lifeline aotearoa",
     "youthline", "samaritans ireland"}
)  # fmt: skip
# A capitalised run with one of these after its first word is an
# organisation, not a person ("Trevor Project", "Jordan Foundation").
_ORG_WORDS = frozenset(
    """Project Line Lifeline Helpline Hotline Foundation Trust Society Association Institute Centre Center Clinic
    Hospital Network Services Service University College School Council Bank Mail Company Inc Ltd Corp Group
    Fund Charity Alliance Coalition Agency Department Ministry Club Commission Committee Court Party Government
    Police Army Navy Office Board Authority Union Museum Library Gallery Hotel Airport Station Street Road Avenue
    Bridge Treatment Program Programme""".split()
)
# An unlisted word after a first name is taken as a surname ("Hiroshi
# Sato"), but not one shaped like an English derived word: "Loan Passed",
# "Assisted Outpatient Treatment", "Royal Commission" were names on Reddit.
_WORD_SUFFIX = re.compile(
    r"(?:ed|ing|tion|sion|ment|ness|ity|ies|ous|ive|able|ible|ful|less|ism|ist|ance|ence|ship|hood|wards?|ics|ient)$"
)
# A run of capitalised words after one of these is a thing ("an Avis rental",
# "the Juul"), not a person.
_ARTICLES = frozenset({"a", "an", "the", "this", "that", "these", "those", "every", "each", "any", "some", "no"})
# A sentence-initial word is a name only before one of these ("Rebecca
# said", "David and I", "Bob has"), or a past tense in -ed; not before any
# lower-case word ("Rock climbing", "Job stability", "Ah i see").
_VERBS = frozenset(
    """said says say told tells asked asks is was has had does did will would can could should might must
    isn wasn hasn hadn doesn didn won wouldn couldn shouldn wants wanted thinks thought knows knew went goes
    came comes called calls texted texts got gets made makes left leaves loves loved likes liked hates hated
    seems seemed feels felt keeps kept tried tries helped helps took takes gave gives found finds lives lived
    works worked died passed moved started stopped broke cried laughed yelled screamed hit hurt never always
    just also still and y et und""".split()
)
# Lower-case words that may follow a name given after "i'm" ("i'm jake and
# I'm 17", "i'm jake from Leeds"); any other makes it a state ("i'm fed up").
_AFTER_NAME = frozenset({"and", "btw", "from", "here", "lol", "haha", "by", "too", "again", "i", "im", "but", "so",
                         "aged", "age", "yo", "fyi"})  # fmt: skip
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


@functools.cache
def _lower_first_names() -> pl.Series:
    return pl.Series(sorted(n.lower() for n in gazetteer()[0]), dtype=pl.String)


@functools.cache
def _common_series() -> pl.Series:
    return pl.Series(sorted(gazetteer()[2] | _NEVER), dtype=pl.String)


def _lorem_words() -> set[str]:
    """Faker's English lorem list: about a thousand everyday words ("rock",
    "job", "bank") that VADER and the stop words leave out, several of them
    also first names or surnames somewhere."""
    from faker.providers.lorem.en_US import Provider as Lorem

    return {word.lower() for word in Lorem.word_list}


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
    common |= _lorem_words()
    return folded(first), folded(last), frozenset(common)


@functools.cache
def _function_words() -> frozenset[str]:
    """Words that start a sentence before a name ("Then Tomasz told me",
    "Yesterday Emily called"): stop words, :data:`_NEVER`, time words. Not
    any common word: "Discord Server" is not "Discord" then a name."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    times = {"yesterday", "today", "tonight", "tomorrow", "maybe", "recently", "honestly", "sometimes", "later"}
    return frozenset(ENGLISH_STOP_WORDS) | _NEVER | times


def _place_words() -> set[str]:
    """Country, US state, Canadian province and British county names
    (Faker's address lists) and the continents: "Ireland", "Georgia", "Kent",
    "Alberta" and "Asia" are places before they are names."""
    from faker.providers.address.en import Provider as English
    from faker.providers.address.en_CA import Provider as Canadian
    from faker.providers.address.en_GB import Provider as British
    from faker.providers.address.en_US import Provider as American

    continents = ["Africa", "America", "Antarctica", "Asia", "Europe", "Oceania"]
    names = [*English.countries, *American.states, *getattr(British, "counties", ()), *getattr(Canadian, "provinces", ()),
             *continents]  # fmt: skip
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


def _is_common(word: str, common: frozenset[str]) -> bool:
    """``word`` (lower case) or the singular of it is a common English word
    ("banks")."""
    if word in common:
        return True
    if len(word) > 4 and word.endswith("ies") and word[:-3] + "y" in common:
        return True  # "families"
    return len(word) > 3 and word.endswith("s") and word[:-1] in common


def _helpline(words: list[str]) -> bool:
    """The run of words names a helpline or an organisation: one of
    :data:`_HELPLINES` (the whole run or its first one to three words), or
    a word of :data:`_ORG_WORDS` after the first."""
    lowered = [w.lower() for w in words]
    if any(" ".join(lowered[:n]) in _HELPLINES for n in range(1, min(3, len(lowered)) + 1)):
        return True
    return any(w in _ORG_WORDS for w in words[1:])


@functools.lru_cache(maxsize=200_000)
def decide(
    text: str, initial: bool, previous: str, verb_next: bool = False, word_next: bool = False
) -> tuple[int, int] | None:
    """(offset, length) of the name inside the matched ``text``, or None when
    it is not taken as a name (rules: module docstring). ``initial``: the
    match starts a sentence; ``verb_next``: a verb follows it; ``word_next``:
    a lower-case word other than "and", "from"... follows it."""
    cue, start = _cue_of(text)
    # After the cue: a relation's verb ("is called"), a comma, then a title.
    rest = text[start:]
    skip = len(rest) - len(rest.lstrip(" ,"))
    start += skip
    # A sign-off's match runs to the end of the message.
    name = rest[skip:].rstrip(" \t\r\n.!")
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
    # Before trailing common words are dropped: "Trevor Project" is an
    # organisation, not "Trevor" and a common word.
    if _helpline([w for w in words if w[:1].isupper()]):
        return None
    # Drop trailing capitalised words that are common ("Jane Smith Thursday").
    while len(words) > 1 and (words[-1].lower() in common or words[-1].lower() in _NEVER):
        words.pop()
    while words and words[0] in _TITLES:
        start += len(words[0]) + 1
        words.pop(0)
    if not words or not words[0]:
        return None
    if not words[0][:1].isupper():
        # One lower-case word, after a name-giving cue or a sign-off.
        word = words[0]
        ok = word.title() in first_names and not _is_common(word, common) and word not in _NEVER
        # After "i'm" a word that runs on into the sentence is a state ("i'm
        # fed up"), not a name ("i'm jake", "i'm jake and i'm 17").
        ok = ok and not (cue == "weak" and word_next)
        return (start, len(word)) if ok and cue in ("strong", "weak", "signoff", "dash") else None
    caps = [w for w in words if w[:1].isupper()]
    head = caps[0]
    lower = head.lower()
    known = head in first_names or head in surnames
    is_common = _is_common(lower, common)
    if cue == "none" and len(words) > 1 and lower in _function_words() and not _pair(caps, first_names, surnames, common):
        # "Then Tomasz told me", "In Paris": a capitalised word of the
        # sentence, then what follows it decided on its own.
        sub = decide(" ".join(words[1:]), False, lower, verb_next, word_next)
        return None if sub is None else (start + len(words[0]) + 1 + sub[0], sub[1])
    if lower in _NEVER:
        return None
    if cue == "none" and previous.rsplit(" ", 1)[-1] in _ARTICLES:
        return None
    if cue == "strong":
        ok = True
    elif cue == "signoff":
        ok = head in first_names or not is_common
    elif cue == "dash":
        ok = known
    elif cue in ("title", "relation", "named"):
        ok = known or not is_common
    elif cue == "weak":
        ok = head in first_names and not is_common
        if not ok and len(caps) >= 2:
            ok = _pair(caps, first_names, surnames, common)
    elif len(caps) >= 2:
        ok = _pair(caps, first_names, surnames, common)
        if not ok and not (initial and not verb_next):
            # "I told Priya Monday": the first word alone may still be a name.
            words = caps = [head]
            ok = _single(head, initial, previous, verb_next, first_names, common)
    else:
        ok = _single(head, initial, previous, verb_next, first_names, common)
    if not ok:
        return None
    return start, len(" ".join(words))


def _single(head: str, initial: bool, previous: str, verb_next: bool, first_names: frozenset[str],
            common: frozenset[str]) -> bool:  # fmt: skip
    words = previous.split(" ")
    place = words[-1] in _PLACE_WORDS or (words[-1] == "to" and words[0] in _MOTION)
    if head not in first_names or _is_common(head.lower(), common) or place:
        return False
    # At the start of a sentence any word is capitalised: there a single
    # word must be a gazetteer name of three letters or more (not "Al")
    # followed by a verb ("Rebecca said"; not "Rock climbing helps").
    return not initial or (verb_next and len(head) >= 3)


def _pair(caps: list[str], first_names: frozenset[str], surnames: frozenset[str], common: frozenset[str]) -> bool:
    head, tail = caps[0], caps[-1]
    if head not in first_names:
        return False
    if tail not in surnames and tail not in first_names:
        # An unlisted surname ("Hiroshi Sato") after a first name that is not
        # a common word.
        lower = tail.lower()
        return not _is_common(head.lower(), common) and not _is_common(lower, common) and not _WORD_SUFFIX.search(lower)
    return not (_is_common(head.lower(), common) and _is_common(tail.lower(), common))




def spread_forms(names: list[str]) -> dict[str, list[tuple[str, bool]]]:
    """For each name found (folded like the texts), the forms whose other
    occurrences are that person too: the name as found and, for a full name,
    each of its capitalised words of three letters or more that is not a
    title (not the particles "van", "de"...: "Sarah Okafor": "Sarah", "Okafor"). With each form, whether it
    is compared ignoring case: yes unless it is a common word ("sarah" is
    Sarah; "hope" is not Hope), and never for one of two letters."""
    _, _, common = gazetteer()
    out: dict[str, list[tuple[str, bool]]] = {}
    # A Python loop over the distinct names found (a few per conversation).
    for name in names:
        words = [w for w in name.split(" ") if w]
        forms = [name] if len(words) == 1 else [name, *(w for w in words if len(w) >= 3 and w[:1].isupper() and w not in _TITLES)]
        items = []
        for form in dict.fromkeys(forms):
            lower = form.lower()
            if lower in _NEVER or (len(words) > 1 and form != name and _is_common(lower, common)):
                continue  # "Will" of "Will Smith" alone is the verb more often than the man
            items.append((form, len(form) >= 3 and not _is_common(lower, common)))
        if items:
            out[name] = items
    return out


def name_spans(texts: pl.Series) -> pl.DataFrame:
    """Person-name spans (:data:`NAMES_SCHEMA`, character offsets) in ``texts``."""
    empty = pl.DataFrame(schema=NAMES_SCHEMA)
    if not len(texts):
        return empty
    folded = fold_names(texts)
    spans = find_spans(folded, _REGEX, "pii_names")
    # A match ending in a lower-case word ("i'm sorry", "my name is jake") is
    # a name only if that word is a first name: checked here in one column
    # lookup, as "I'm" + a word is a fifth of all candidates.
    text = spans["text"]
    last = text.str.extract(r"[ ,:\n]([a-z]{3,25})[ \t\r\n.!]*$", 1)
    # A lone capitalised common word ("The", "What", "Today": most
    # candidates) is never a name (decide's rules): dropped before the
    # context columns are cut for it.
    lone = ~text.str.contains(" ", literal=True) & text.str.to_lowercase().is_in(_common_series().implode())
    spans = spans.filter((last.is_null() | last.is_in(_lower_first_names().implode())) & ~lone)
    if not len(spans):
        return empty
    # Byte slices of the ASCII folded text: str.slice walks each text from
    # its start, quadratic over the many spans of one long message.
    source = folded.cast(pl.Binary).gather(spans["row"])
    lo = (spans["start"] - 24).clip(lower_bound=0)
    pre = source.bin.slice(lo, spans["start"] - lo).cast(pl.String)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
    post = source.bin.slice(spans["end"], pl.Series([16] * len(spans), dtype=pl.Int32)).cast(pl.String)  # type: ignore[arg-type]  # per-row offsets: polars runs them, its stub types scalars only
    following = post.str.extract(r"^ ([a-z]+)", 1)
    spans = spans.with_columns(
        initial=pre.str.contains(r"(?:^|[.!?:;\n*(\"-])[ \t\"']*$"),
        previous=pre.str.extract(r"((?:[A-Za-z']+ )?[A-Za-z']+)[ \t]*$", 1).str.to_lowercase().fill_null(""),
        # A bare word at a sentence start is a name only before a verb ("Rebecca said").
        verb_next=(following.is_in(sorted(_VERBS)) | following.str.contains(r"^[a-z]{2,}ed$")).fill_null(False),
        word_next=(~following.is_in(sorted(_AFTER_NAME))).fill_null(False),
        # "Don't", "Won't": the word before "'t" is a verb, never a name.
        contraction=post.str.contains(r"^'t\b"),
    ).filter(~pl.col("contraction"))
    keys = spans.select("text", "initial", "previous", "verb_next", "word_next").unique()
    # One Python decision per distinct candidate (module docstring, step 3).
    decided = [decide(*key) for key in keys.iter_rows()]
    keys = keys.with_columns(
        offset=pl.Series([d[0] if d else None for d in decided], dtype=pl.Int32),
        length=pl.Series([d[1] if d else None for d in decided], dtype=pl.Int32),
    )
    spans = spans.join(keys, on=["text", "initial", "previous", "verb_next", "word_next"], how="inner").drop_nulls("offset")
    return spans.select(
        "row",
        (pl.col("start") + pl.col("offset")).cast(pl.Int32).alias("start"),
        (pl.col("start") + pl.col("offset") + pl.col("length")).cast(pl.Int32).alias("end"),
    ).sort("row", "start")
