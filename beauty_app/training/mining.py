"""Mining a labelled classification set ("Perfect-30K") from an unlabelled catalog's descriptions.

The paper (supplement A.1) ran TF-IDF over all Perfect-500K descriptions, counted 44 rough product
categories by hand and took the images whose description names one of them. This module does the
same in three steps:

1. **Keywords** (:class:`KeywordSet`): each category with its synonyms, either proposed from the
   descriptions by :func:`propose_keywords` (TF-IDF), the built-in list of 44 beauty categories
   (``default_keywords.txt``) or a file the user edited. File format, one category per line::

       # comment
       lipstick: lipstick, lip stick, lip colour, lip color
       !ignore: razor burn, lipstick case

2. **Matching** (:func:`match_categories`, :func:`assign_categories`): descriptions are lower-cased,
   split into clauses at ``, ; | ( ) [ ]`` and `` - ``, and into words (hyphens separate words, so
   "eye-shadow" is "eye shadow"). Within a clause the words are scanned left to right; at each
   position the *longest* synonym or ignore phrase starting there is taken and its words are used
   up, so "sleeping eye mask" counts as "eye mask" and never also as "mask". A final "s"/"es" on a
   synonym's last word is accepted ("lipsticks"). Negated words never count: "X free" (as in
   "fragrance free"), "free of/from X" and "without X". A description that names exactly one
   category gets it; one naming none, or two or more (ambiguous), gets ``None``.

3. **Dataset** (:func:`mine_dataset`): categories with at least ``min_images`` matches are kept
   (the ``n_categories`` largest), each capped at ``per_category`` images by a seeded sample,
   unreadable images are replaced by other matches, and a stratified train/val split is made.

Output folder (read back with :meth:`MinedDataset.load`; a small stable API for the trainer):

* ``classes.txt``: one class name per line; the label of a class is its 0-based line number.
* ``train.csv``, ``val.csv``: columns ``id,path,label,category,description`` with absolute image
  paths; ``category`` is the class name (the source of truth), ``label`` its index. Both files are
  valid catalog CSVs for :func:`beauty_app.catalog_io.read_catalog`.
* ``stats.json``: per-channel RGB ``mean``/``std`` (0..1, from up to ``stats_images`` images resized
  to 224x224), per-class counts, split sizes, source catalog, keyword source, settings, timestamp.
  Written last: a folder without it is an unfinished run.
* ``report.md``: categories, counts, three example descriptions each, what was dropped and why.
* ``keywords.txt``: the keywords used, in the file format above (edit and re-run with
  ``--keywords``); ``proposed_keywords.txt`` too when they were proposed by TF-IDF.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import unicodedata
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from beauty_app.catalog_io import CatalogEntry, read_catalog
from beauty_app.fileio import atomic_write_text, write_csv
from beauty_app.errors import CatalogError, ImageLoadError, UserError
from beauty_app.imaging import load_image
from beauty_app.jobs import JobControl, report

logger = logging.getLogger(__name__)

DEFAULT_KEYWORDS_FILE = "default_keywords.txt"
"""The built-in keyword file shipped next to this module (``--keywords default``)."""

STATS_SIZE = 224
"""Side of the square resize (no letterbox) at which mean/std are measured, as in the paper."""

DATASET_FORMAT = "beautylens-mined-dataset"
DATASET_VERSION = 1
LIST_COLUMNS = ("id", "path", "label", "category", "description")

# --- proposal tuning (see propose_keywords) ---
MIN_HEAD_SHARE = 0.25
"""A new term must end the product title in at least this share of the descriptions containing it."""
MIN_OWN_SHARE = 0.5
"""A candidate category must be the only category in at least this share of the descriptions it matches."""
MERGE_SHARE = 0.5
"""A phrase that covers more than this share of an accepted word's descriptions absorbs it ("hair dryer" + "dryer")."""
MAX_NEW_TERMS_PER_CATEGORY = 20
"""At most ``n_categories`` times this many new terms are tried, which bounds the time on huge catalogs."""

# Words that never name a product type: TF-IDF stop words on top of scikit-learn's English list
# (packaging, sizes, audiences, claims and marketing adjectives common in beauty listings).
FILLER_WORDS: frozenset[str] = frozenset({
    "new", "free", "skin", "ml", "oz", "fl", "gift", "gifts", "set", "sets", "pack", "packs", "count", "size",
    "travel", "mini", "value", "women", "woman", "men", "man", "unisex", "kids", "girls", "best", "seller",
    "bestseller", "long", "lasting", "vegan", "natural", "organic", "tested", "dermatologist",
    "dermatologically", "cruelty", "paraben", "parabens", "lightweight", "dry", "oily", "normal", "sensitive",
    "combination", "type", "types", "box", "idea", "ideas", "beauty", "makeup", "cosmetic", "cosmetics",
    "care", "essentials", "essential", "professional", "pro", "salon", "quality", "premium", "luxury",
    "edition", "limited", "original", "brand", "genuine", "authentic", "sealed", "shade", "shades", "ultra",
    "pure", "daily", "soft", "fresh", "smooth", "bright", "radiant", "glow", "luxe", "luxurious", "intense",
    "instant", "perfect", "ultimate", "super", "extra", "advanced", "classic", "signature", "everyday",
    "formula",
})

# Title parsing for the "head" of a description (the product type usually ends the first clause).
_CUT_WORDS = frozenset({"by", "with", "for", "from", "and", "plus", "featuring", "including"})
_UNIT_WORDS = frozenset({
    "ml", "l", "oz", "fl", "floz", "g", "gr", "gram", "grams", "kg", "mg", "lb", "lbs", "ct", "count", "pcs",
    "pc", "piece", "pieces", "pack", "packs", "set", "spf", "no", "nr", "w", "watt", "watts", "x", "inch",
    "inches", "cm", "mm", "shade", "shades", "blade", "blades", "sheet", "sheets", "colors", "colours",
    "ounce", "ounces",
})

_CLAUSE_SPLIT = re.compile(r"[,;|()\[\]{}\n\r\t]|\s[-\u2013\u2014/]\s")
_WORD = re.compile(r"[^\W_]+")
_TFIDF_TOKEN = r"(?u)\b[^\W\d_]{2,}\b"  # words of two or more letters: no numbers, sizes or codes
_NAME_FORBIDDEN = re.compile(r"[:,#\n\r]")


# ---------------------------------------------------------------------------------------------
# Text normalisation


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _drop_negated(tokens: list[str]) -> list[str]:
    """Remove negated words: "fragrance free", "free of/from parabens", "without fragrance"."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if i + 1 < n and tokens[i + 1] == "free" and not (i + 2 < n and tokens[i + 2] in ("of", "from")):
            i += 2
        elif tok == "free" and i + 2 < n and tokens[i + 1] in ("of", "from"):
            i += 3
        elif tok == "without" and i + 1 < n:
            i += 2
        else:
            out.append(tok)
            i += 1
    return out


def _segments(text: str) -> list[list[str]]:
    """Split a description into clauses of lower-case words (the unit of phrase matching)."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    out = []
    for clause in _CLAUSE_SPLIT.split(text):
        tokens = _drop_negated(_WORD.findall(clause))
        if tokens:
            out.append(tokens)
    return out


def _normalize_phrase(text: str) -> str:
    return " ".join(_words(text))


def _normalize_name(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _plural_forms(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    last = words[-1]
    return [words[:-1] + (last + "s",), words[:-1] + (last + "es",)]


# ---------------------------------------------------------------------------------------------
# Keyword sets


@dataclass
class KeywordSet:
    """Categories with the synonyms that identify them in descriptions.

    Names and synonyms are normalised on creation (lower case; synonyms as space-separated words).
    A category listed without synonyms matches its own name.

    Attributes:
        categories: ``{category name: [synonym, ...]}`` in priority order.
        ignore: Phrases that never count for any category (e.g. "razor burn").

    Raises:
        CatalogError: A name is empty or contains ``: , #``, a synonym has no words, or a synonym
            is listed under two categories.
    """

    categories: dict[str, list[str]]
    ignore: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        normalized: dict[str, list[str]] = {}
        owner: dict[str, str] = {}
        for raw_name, synonyms in self.categories.items():
            name = _check_name(raw_name)
            if name in normalized:
                raise CatalogError(f'The category "{name}" is listed twice.')
            normalized[name] = _check_synonyms(name, synonyms, owner)
        ignore: list[str] = []
        for raw in self.ignore:
            phrase = _normalize_phrase(raw)
            if not phrase:
                raise CatalogError(f'The ignore phrase "{raw}" has no words.')
            if phrase in owner:
                raise CatalogError(f'"{phrase}" is both a synonym of "{owner[phrase]}" and an ignore phrase.')
            if phrase not in ignore:
                ignore.append(phrase)
        self.categories = normalized
        self.ignore = ignore

    def __len__(self) -> int:
        return len(self.categories)

    @property
    def names(self) -> list[str]:
        """Category names in priority order."""
        return list(self.categories)

    @classmethod
    def parse(cls, text: str, source: str = "Keyword text") -> KeywordSet:
        """Read the keyword file format (see the module docstring).

        Args:
            text: File content.
            source: How to name the text in error messages, e.g. ``'Keyword file "k.txt"'``.

        Raises:
            CatalogError: A line is malformed; the message gives its line number.
        """
        categories: dict[str, list[str]] = {}
        ignore: list[str] = []
        first_line: dict[str, int] = {}  # category name or synonym -> line where it first appeared
        owner: dict[str, str] = {}
        for line_no, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            head, sep, rest = line.partition(":")
            shown = line if len(line) <= 60 else line[:57] + "..."
            if not sep:
                raise CatalogError(
                    f'{source} line {line_no}: expected "category: synonym, synonym, ...", found "{shown}".'
                )
            if ":" in rest:
                raise CatalogError(f'{source} line {line_no}: one category per line, found two ":" in "{shown}".')
            items = [item.strip() for item in rest.split(",") if item.strip()]
            try:
                if head.strip().startswith("!"):
                    if head.strip().lower() != "!ignore":
                        raise CatalogError(f'unknown directive "{head.strip()}" (only "!ignore" exists)')
                    for item in items:
                        phrase = _normalize_phrase(item)
                        if not phrase:
                            raise CatalogError(f'the ignore phrase "{item}" has no words')
                        if phrase in owner:
                            raise CatalogError(
                                f'"{phrase}" is a synonym of "{owner[phrase]}" (line {first_line[phrase]}) '
                                "and cannot be ignored too"
                            )
                        ignore.append(phrase)
                    continue
                name = _check_name(head)
                if name in categories:
                    raise CatalogError(f'the category "{name}" was already listed on line {first_line[name]}')
                before = set(owner)
                categories[name] = _check_synonyms(name, items, owner, first_line)
                first_line[name] = line_no
                for syn in set(owner) - before:
                    first_line[syn] = line_no
                clash = [p for p in categories[name] if p in ignore]
                if clash:
                    raise CatalogError(f'"{clash[0]}" is also an ignore phrase')
            except CatalogError as exc:
                raise CatalogError(f"{source} line {line_no}: {str(exc).rstrip('.')}.") from None
        if not categories:
            raise CatalogError(f"{source} lists no categories.")
        return cls(categories, ignore)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeywordSet:
        """Read a keyword file (UTF-8).

        Raises:
            CatalogError: The file is missing, unreadable or malformed.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise CatalogError(f'Keyword file "{p}" does not exist.') from None
        except IsADirectoryError:
            raise CatalogError(f'Keyword file "{p}" is a folder, not a text file.') from None
        except UnicodeDecodeError:
            raise CatalogError(f'Keyword file "{p}" is not UTF-8 text.') from None
        except OSError as exc:
            raise CatalogError(f'Keyword file "{p}" cannot be read ({exc.strerror or exc}).') from None
        return cls.parse(text, f'Keyword file "{p}"')

    @classmethod
    def default(cls) -> KeywordSet:
        """The built-in 44 beauty categories with their synonyms (``default_keywords.txt``)."""
        text = resources.files(__package__).joinpath(DEFAULT_KEYWORDS_FILE).read_text(encoding="utf-8")
        return cls.parse(text, "The built-in keyword file")

    def to_text(self, header: str = "") -> str:
        """Render in the keyword file format; ``header`` lines become ``#`` comments."""
        lines = [f"# {h}".rstrip() for h in header.splitlines()] if header else []
        lines += [
            "# One category per line: 'category: synonym, synonym, ...'. Matching is case-insensitive on",
            "# whole words; the longest phrase at a position wins ('eye mask' is never also 'mask'); a",
            "# description naming two categories is left out. '!ignore:' phrases never count.",
        ]
        lines += [f"{name}: {', '.join(syns)}" for name, syns in self.categories.items()]
        if self.ignore:
            lines.append(f"!ignore: {', '.join(self.ignore)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | os.PathLike[str], header: str = "") -> None:
        """Write the keyword file atomically (see :meth:`to_text`).

        Raises:
            UserError: The file cannot be written.
        """
        try:
            atomic_write_text(path, self.to_text(header))
        except OSError as exc:
            raise UserError(f'Could not write "{path}" ({exc.strerror or exc}).') from None


def _check_name(raw: str) -> str:
    name = _normalize_name(raw)
    if not name:
        raise CatalogError("a category name is empty")
    if _NAME_FORBIDDEN.search(name) or name.startswith("!"):
        raise CatalogError(f'the category name "{name}" may not contain ":", ",", "#" or start with "!"')
    return name


def _check_synonyms(name: str, synonyms: Sequence[str], owner: dict[str, str],
                    first_line: dict[str, int] | None = None) -> list[str]:
    """Normalise a category's synonyms (its name when none) and claim them in ``owner``."""
    out: list[str] = []
    for raw in synonyms or [name]:
        phrase = _normalize_phrase(raw)
        if not phrase:
            raise CatalogError(f'the synonym "{raw}" of "{name}" has no words')
        if phrase in owner and owner[phrase] != name:
            where = f" (line {first_line[phrase]})" if first_line and phrase in first_line else ""
            raise CatalogError(f'"{phrase}" is listed under both "{owner[phrase]}"{where} and "{name}"')
        if phrase not in out:
            out.append(phrase)
            owner[phrase] = name
    return out


# ---------------------------------------------------------------------------------------------
# Matching


class _Matcher:
    """Longest-phrase-first scanner over a description's clauses (see the module docstring)."""

    def __init__(self, keywords: KeywordSet) -> None:
        exact: dict[tuple[str, ...], str | None] = {}
        for name, synonyms in keywords.categories.items():
            for syn in synonyms:
                exact[tuple(syn.split())] = name
        for phrase in keywords.ignore:
            exact[tuple(phrase.split())] = None
        table: dict[tuple[str, ...], str | None] = {}
        for key, name in exact.items():
            for form in _plural_forms(key):
                table.setdefault(form, name)
        table.update(exact)  # a listed word beats another's plural form ("glass" vs "gla"+"ss")
        self.table = table
        self.max_len = max((len(k) for k in table), default=0)
        self.first_words = frozenset(k[0] for k in table)

    def match(self, segments: list[list[str]]) -> set[str]:
        found: set[str] = set()
        table, first = self.table, self.first_words
        for tokens in segments:
            i, n = 0, len(tokens)
            while i < n:
                if tokens[i] in first:
                    for length in range(min(self.max_len, n - i), 0, -1):
                        key = tuple(tokens[i:i + length])
                        if key in table:
                            name = table[key]
                            if name is not None:
                                found.add(name)
                            i += length
                            break
                    else:
                        i += 1
                else:
                    i += 1
        return found


def match_categories(descriptions: Sequence[str], keywords: KeywordSet) -> list[tuple[str, ...]]:
    """All categories each description names, after the longest-phrase and negation rules.

    Args:
        descriptions: Product texts.
        keywords: Categories and synonyms.

    Returns:
        One sorted tuple of category names per description (empty when none matched).
    """
    matcher = _Matcher(keywords)
    return [tuple(sorted(matcher.match(_segments(d)))) for d in descriptions]


def assign_categories(descriptions: Sequence[str], keywords: KeywordSet) -> list[str | None]:
    """The one category each description names, or ``None`` when it names none or several.

    Args:
        descriptions: Product texts.
        keywords: Categories and synonyms.

    Returns:
        One category name or ``None`` per description.
    """
    return [m[0] if len(m) == 1 else None for m in match_categories(descriptions, keywords)]


# ---------------------------------------------------------------------------------------------
# Proposal


class _Progress:
    """One monotonic "mine" progress stage whose total grows as later phases become known."""

    def __init__(self, job: JobControl | None) -> None:
        self.job, self.done, self.total = job, 0, 0

    def plan(self, n: int) -> None:
        """Add ``n`` steps to the total (negative to correct an estimate)."""
        self.total += n

    def step(self, n: int = 1, message: str = "") -> None:
        self.done += n
        report(self.job, "mine", self.done, max(self.total, self.done), message)


@functools.cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | FILLER_WORDS


def _head_terms(segments: list[list[str]]) -> list[str]:
    """The words that end the product title: last word and last two words of the first clause.

    English product titles end their first noun phrase with the product type ("... Matte
    Lipstick, Red, 3.5 g"), so the clause is cut at connectives ("X by Brand", "X with SPF"),
    and trailing sizes, units and filler words are removed.
    """
    if not segments:
        return []
    tokens = segments[0]
    for i, tok in enumerate(tokens[1:], 1):
        if tok in _CUT_WORDS:
            tokens = tokens[:i]
            break
    stop = _stop_words()
    end = len(tokens)
    while end and (any(c.isdigit() for c in tokens[end - 1]) or tokens[end - 1] in _UNIT_WORDS
                   or tokens[end - 1] in stop):
        end -= 1
    if not end:
        return []
    heads = [tokens[end - 1]]
    if end >= 2:
        heads.append(f"{tokens[end - 2]} {tokens[end - 1]}")
    return heads


def propose_keywords(
    descriptions: Sequence[str],
    n_categories: int = 44,
    min_images: int = 10,
    *,
    vocabulary: KeywordSet | Literal["default"] | None = "default",
    job: JobControl | None = None,
) -> KeywordSet:
    """Propose categories and their keywords from descriptions with TF-IDF.

    How it works (the paper's "TF-IDF, then count categories by hand", with the hand knowledge
    in the built-in keyword list):

    1. scikit-learn's ``TfidfVectorizer`` (unigrams and bigrams, English stop words plus
       :data:`FILLER_WORDS`, words of letters only, terms in at least two descriptions) scores
       each term by its TF-IDF summed over all descriptions.
    2. Candidates: every ``vocabulary`` category (scored by its synonyms' summed TF-IDF), then
       every other term that ends the product title (see :func:`_head_terms`) in at least
       :data:`MIN_HEAD_SHARE` of its descriptions and that no vocabulary synonym matches (so
       "volumizing mascara" is not a new category beside "mascara"). The head rule keeps brands,
       product-line words and claims out: they start titles or follow the type, they do not end
       the noun phrase. (A brand can still end titles that never name the product type; with
       ``vocabulary=None`` and a small ``min_images`` it may then be proposed: edit the file.)
    3. Candidates are tried in score order, known categories first. One is accepted when, matched
       together with those already accepted, it alone names at least ``min_images``
       descriptions and at least :data:`MIN_OWN_SHARE` of those it names. So attributes that
       always come with an accepted type ("waterproof" mascara) and brands are rejected.
       A new phrase that covers more than :data:`MERGE_SHARE` of an accepted new word's
       descriptions absorbs it ("hair dryer" takes "dryer" as a synonym); a smaller refinement stays a
       category of its own ("eye mask" beside "mask").
    4. Categories left with fewer than ``min_images`` unambiguous matches are dropped, and the
       ``n_categories`` best-scored are kept.

    Args:
        descriptions: All catalog descriptions.
        n_categories: Most categories to propose.
        min_images: Fewest unambiguous matches a category needs.
        vocabulary: Known categories with synonyms: ``"default"`` (built-in), a keyword set, or
            ``None`` for purely data-driven terms.
        job: Optional progress/cancel control (stage ``"mine"``).

    Returns:
        The proposed keywords, best first; the vocabulary's ignore phrases are kept.

    Raises:
        CatalogError: No description has words to work with, or no category reaches
            ``min_images`` matches.
    """
    return _propose(descriptions, n_categories, min_images, vocabulary, _Progress(job))


def _propose(descriptions: Sequence[str], n_categories: int, min_images: int,
             vocabulary: KeywordSet | Literal["default"] | None, progress: _Progress) -> KeywordSet:
    from sklearn.feature_extraction.text import TfidfVectorizer

    _check_positive(n_categories=n_categories, min_images=min_images)
    vocab = KeywordSet.default() if vocabulary == "default" else vocabulary or KeywordSet({})
    # Interned words: a catalog of 500K titles would otherwise hold millions of copies of "spray".
    segs = [[[sys.intern(t) for t in seg] for seg in _segments(d)] for d in descriptions]
    texts = [" ".join(" ".join(s) for s in seg) for seg in segs]
    docs = [i for i, t in enumerate(texts) if t]
    if not docs:
        raise CatalogError("None of the descriptions contains words to propose categories from.")

    vectorizer = TfidfVectorizer(
        lowercase=False, token_pattern=_TFIDF_TOKEN, ngram_range=(1, 2), min_df=2 if len(docs) >= 2 else 1,
        stop_words=sorted(_stop_words()), sublinear_tf=True, dtype=np.float32,
    )
    try:
        tfidf = vectorizer.fit_transform([texts[i] for i in docs])
    except ValueError:  # empty vocabulary: only numbers, stop words or one-off words
        raise CatalogError(
            "The descriptions share no words that could name a product category (only numbers, sizes or "
            "one-off words)."
        ) from None
    term_index: dict[str, int] = vectorizer.vocabulary_
    score = np.asarray(tfidf.sum(axis=0)).ravel()
    doc_freq = tfidf.getnnz(axis=0)

    head_count: Counter[str] = Counter()
    for i in docs:
        head_count.update(set(_head_terms(segs[i])))

    postings: dict[str, list[int]] = {}
    for i in docs:
        for tok in {t for seg in segs[i] for t in seg}:
            postings.setdefault(tok, []).append(i)

    def docs_with(phrases: Iterable[str]) -> set[int]:
        found: set[int] = set()
        for phrase in phrases:
            words = phrase.split()
            last = words[-1]
            hits = set(postings.get(last, ())) | set(postings.get(last + "s", ())) | set(postings.get(last + "es", ()))
            for w in words[:-1]:
                hits &= set(postings.get(w, ()))
            found |= hits
        return found

    def term_score(phrase: str) -> float:
        words = tuple(phrase.split())
        return sum(float(score[term_index[" ".join(f)]]) for f in [words, *_plural_forms(words)]
                   if " ".join(f) in term_index)

    known_forms = {" ".join(f) for syns in vocab.categories.values() for s in syns
                   for f in [tuple(s.split()), *_plural_forms(tuple(s.split()))]}
    known_forms |= set(vocab.ignore)
    known = sorted(((sum(term_score(s) for s in syns), name, list(syns), False)
                    for name, syns in vocab.categories.items()), key=lambda c: -c[0])
    vocab_matcher = _Matcher(vocab)
    new_terms = []
    for term, col in term_index.items():
        if term in known_forms or doc_freq[col] < min_images:
            continue
        if vocab_matcher.match([term.split()]):
            continue  # names a known category already ("volumizing mascara"): a kind of it, not a new one
        if term.endswith("s") and (term[:-1] in term_index or term[:-2] in term_index):
            continue  # a plural: its singular matches it anyway
        if head_count[term] / doc_freq[col] >= MIN_HEAD_SHARE:
            new_terms.append((term_score(term), term, [term], True))
    new_terms.sort(key=lambda c: (-c[0], c[1]))
    new_terms = new_terms[: n_categories * MAX_NEW_TERMS_PER_CATEGORY]
    candidates = known + new_terms
    progress.plan(len(candidates) + len(docs))

    accepted: dict[str, list[str]] = {}
    scores: dict[str, float] = {}
    is_new: set[str] = set()
    for cand_score, name, synonyms, new in candidates:
        progress.step(1, f"trying category {name!r}")
        if name in accepted:
            continue
        cand_docs = docs_with(synonyms)
        if len(cand_docs) < min_images:
            continue
        try:
            matcher = _Matcher(KeywordSet({**accepted, name: synonyms}, vocab.ignore))
        except CatalogError:  # the term is already a synonym of an accepted category
            continue
        results = [matcher.match(segs[i]) for i in cand_docs]
        hits = sum(name in r for r in results)
        own = sum(r == {name} for r in results)
        if own < min_images or own < MIN_OWN_SHARE * hits:
            continue
        absorbed = None
        if new:
            for other in [o for o in accepted if o in is_new and len(accepted[o]) == 1]:
                if f" {other} " in f" {name} ":
                    other_docs = docs_with(accepted[other])
                    if len(other_docs & cand_docs) > MERGE_SHARE * len(other_docs):
                        absorbed = other
                        break
        if absorbed is not None:
            # Keep the absorbed word's rank; the phrase becomes the name, the word a synonym.
            accepted = {(name if k == absorbed else k): ([name, *v] if k == absorbed else v)
                        for k, v in accepted.items()}
            scores[name] = max(scores.pop(absorbed), cand_score)
            is_new.discard(absorbed)
        else:
            accepted[name] = list(synonyms)
            scores[name] = cand_score
        if new:
            is_new.add(name)

    # Dropping a category can make others ambiguous or free their words, so settle iteratively.
    doc_segs = [segs[i] for i in docs]
    while True:
        order = sorted(accepted, key=lambda n: -scores[n])[:n_categories]
        matcher = _Matcher(KeywordSet({n: accepted[n] for n in order}, vocab.ignore))
        counts: Counter[str] = Counter()
        for found in map(matcher.match, doc_segs):
            if len(found) == 1:
                counts.update(found)
        keep = [n for n in order if counts[n] >= min_images]
        if len(keep) == len(accepted):
            break
        accepted = {n: accepted[n] for n in keep}
    progress.step(len(docs), f"{len(accepted)} categories proposed")
    if not accepted:
        raise CatalogError(
            f"No product category is named by at least {min_images} descriptions; lower --min-images or "
            "give a keyword file with --keywords."
        )
    return KeywordSet({n: accepted[n] for n in sorted(accepted, key=lambda n: -scores[n])}, vocab.ignore)


# ---------------------------------------------------------------------------------------------
# The mined dataset


@dataclass(frozen=True)
class MinedSample:
    """One image of a mined dataset.

    Attributes:
        id: Catalog id.
        path: Absolute image path.
        label: Class index (line number in ``classes.txt``, from 0).
        category: Class name.
        description: The catalog description it was mined from.
    """

    id: str
    path: Path
    label: int
    category: str
    description: str = ""


@dataclass
class MinedDataset:
    """A mined classification set: classes, train/val lists, normalisation statistics.

    Attributes:
        root: The dataset folder.
        classes: Class names; a class's label is its index.
        train: Training samples.
        val: Validation samples.
        mean: Per-channel RGB mean in 0..1.
        std: Per-channel RGB standard deviation in 0..1.
        stats: The content of ``stats.json``.
        skipped: ``(item, reason)`` for list rows whose image is gone (only from :meth:`load`).
    """

    root: Path
    classes: list[str]
    train: list[MinedSample]
    val: list[MinedSample]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    stats: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> MinedDataset:
        """Read a folder written by :func:`mine_dataset`.

        Rows whose image file no longer exists are left out and listed in ``skipped``.

        Raises:
            CatalogError: The folder is not a complete mined dataset, or its files disagree.
        """
        folder = Path(root).resolve()
        stats_path = folder / "stats.json"
        try:
            stats = json.loads(stats_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(
                f'"{folder}" is not a mined dataset (no stats.json); create one with "beauty-app dataset mine".'
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CatalogError(f'The dataset file "{stats_path}" cannot be read ({exc}).') from None
        if not isinstance(stats, dict) or stats.get("format") != DATASET_FORMAT:
            raise CatalogError(f'"{stats_path}" does not describe a mined dataset.')
        if stats.get("version", 0) > DATASET_VERSION:
            raise CatalogError(f'The dataset "{folder}" was written by a newer BeautyLens; update the app.')
        try:
            classes = [c for c in (folder / "classes.txt").read_text(encoding="utf-8").splitlines() if c.strip()]
        except OSError as exc:
            raise CatalogError(f'The dataset file "{folder / "classes.txt"}" cannot be read ({exc}).') from None
        if classes != list(stats.get("classes", classes)):
            raise CatalogError(f'The dataset "{folder}" has classes.txt and stats.json that disagree.')
        label_of = {name: i for i, name in enumerate(classes)}
        skipped: list[tuple[str, str]] = []

        def read_list(name: str) -> list[MinedSample]:
            catalog = read_catalog(folder / name, allow_outside_root=True)
            skipped.extend((f"{name}: {item}", reason) for item, reason in catalog.skipped)
            samples = []
            for entry in catalog.entries:
                if entry.category not in label_of:
                    raise CatalogError(f'The dataset list "{folder / name}" names the unknown class "{entry.category}".')
                samples.append(MinedSample(entry.id, entry.path, label_of[entry.category], entry.category,
                                           entry.description))
            return samples

        train, val = read_list("train.csv"), read_list("val.csv")
        if skipped:
            logger.warning("Dataset %s: %d listed images are missing", folder, len(skipped))
        return cls(folder, classes, train, val, _triple(stats.get("mean")), _triple(stats.get("std")), stats,
                   skipped)


def _triple(value) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CatalogError("The dataset's stats.json has no valid 3-channel mean/std.") from None
    return a, b, c


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name.replace('_', ' ')} must be a whole number of at least 1, not {value!r}.")


def _check_image(path: Path) -> str | None:
    """None when the image decodes, else the reason (small decode: JPEG draft mode keeps it fast)."""
    try:
        load_image(path, max_side=64)
    except ImageLoadError as exc:
        return str(exc)
    except Exception as exc:  # one odd file must not end a mining run over thousands
        logger.warning("Unexpected error decoding %s", path, exc_info=True)
        return f'Image file "{path}" could not be decoded ({exc.__class__.__name__}: {exc}).'
    return None


def _pixel_sums(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Per-channel sum and sum of squares (0..1) of the image resized to STATS_SIZE x STATS_SIZE."""
    try:
        img = load_image(path, max_side=STATS_SIZE)
    except Exception:  # checked moments ago; a file changed underneath is just left out
        logger.warning("Image %s could not be read for the statistics", path, exc_info=True)
        return None
    from PIL import Image

    arr = np.asarray(img.resize((STATS_SIZE, STATS_SIZE), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    pixels = arr.reshape(-1, 3)
    return pixels.sum(axis=0), np.square(pixels).sum(axis=0), pixels.shape[0]


def _map(pool: ThreadPoolExecutor | None, fn: Callable, items: Sequence) -> list:
    return list(pool.map(fn, items)) if pool is not None else [fn(x) for x in items]


def _split_counts(n: int, val_fraction: float) -> int:
    """Validation images of a class of n: the fraction rounded, at least 1 when n >= 2, never all."""
    if n < 2 or val_fraction <= 0:
        return 0
    return min(n - 1, max(1, round(n * val_fraction)))


def mine_dataset(
    catalog_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    n_categories: int = 44,
    per_category: int = 800,
    keywords: str | os.PathLike[str] | KeywordSet | None = None,
    min_images: int = 10,
    val_fraction: float = 0.2,
    seed: int = 0,
    stats_images: int = 2000,
    workers: int = 2,
    allow_outside_root: bool = False,
    job: JobControl | None = None,
) -> MinedDataset:
    """Mine a labelled classification set from a catalog's descriptions and write it to a folder.

    Args:
        catalog_csv: Catalog CSV with ``id,path,description`` (its ``category`` column is not used).
        out_dir: Output folder (created; the dataset files in it are replaced).
        n_categories: Most categories to keep (those with the most matches).
        per_category: Most images per category (a seeded random sample).
        keywords: ``None`` to propose them with TF-IDF, ``"default"`` for the built-in list, a
            keyword file path, or a :class:`KeywordSet`.
        min_images: Categories with fewer usable images are dropped.
        val_fraction: Share of each class that goes to validation (at least one image per class
            of two or more).
        seed: Seed of the per-category sample, the split and the statistics sample.
        stats_images: Most images used for mean/std.
        workers: Threads decoding images.
        allow_outside_root: Accept catalog paths outside the CSV's folder.
        job: Optional progress/cancel control (stage ``"mine"``).

    Returns:
        The dataset as written.

    Raises:
        CatalogError: The catalog has no descriptions, the keywords are malformed, or no category
            keeps ``min_images`` readable images.
        UserError: An argument is out of range or the output folder cannot be written.
    """
    _check_positive(n_categories=n_categories, per_category=per_category, min_images=min_images,
                    stats_images=stats_images, workers=workers)
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"The validation fraction must be at least 0 and below 1, not {val_fraction}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f'The output "{out}" is a file; choose a folder for the mined dataset.')

    progress = _Progress(job)
    catalog = read_catalog(catalog_csv, allow_outside_root=allow_outside_root)
    entries = list(catalog.entries)  # TF-IDF needs every description in memory anyway
    # Plan every phase up front (image counts estimated, corrected once known) so the one "mine"
    # stage never reaches its total before the end.
    check_estimate = min(len(entries), n_categories * per_category)
    stats_estimate = min(check_estimate, stats_images)
    progress.plan(len(entries) + check_estimate + stats_estimate)
    descriptions = [e.description for e in entries]
    if not any(d.strip() for d in descriptions):
        raise CatalogError(
            f'Catalog "{catalog_csv}" has no product descriptions to mine categories from (its description '
            "column is missing or empty)."
        )

    if keywords is None:
        kw = _propose(descriptions, n_categories, min_images, "default", progress)
        keyword_source = "tfidf"
    elif isinstance(keywords, KeywordSet):
        kw, keyword_source = keywords, "given"
    elif str(keywords) == "default":
        kw, keyword_source = KeywordSet.default(), "default"
    else:
        kw, keyword_source = KeywordSet.load(keywords), str(Path(keywords).resolve())

    # --- match every description
    matcher = _Matcher(kw)
    matched: list[tuple[str, ...]] = []
    for start in range(0, len(entries), 512):
        chunk = descriptions[start:start + 512]
        matched += [tuple(sorted(matcher.match(_segments(d)))) for d in chunk]
        progress.step(len(chunk), "matching descriptions")
    by_category: dict[str, list[int]] = {name: [] for name in kw.categories}
    ambiguous: list[int] = []
    unmatched = 0
    for i, found in enumerate(matched):
        if len(found) == 1:
            by_category[found[0]].append(i)
        elif found:
            ambiguous.append(i)
        else:
            unmatched += 1
    rank = {name: r for r, name in enumerate(kw.categories)}
    small = {n: len(ix) for n, ix in by_category.items() if 0 < len(ix) < min_images}
    big = sorted((n for n, ix in by_category.items() if len(ix) >= min_images),
                 key=lambda n: (-len(by_category[n]), rank[n]))
    beyond_cap = {n: len(by_category[n]) for n in big[n_categories:]}
    chosen = big[:n_categories]

    # --- sample each category, replacing unreadable images by further matches
    unreadable: list[tuple[str, str]] = []
    selected: dict[str, list[int]] = {}
    too_few_readable: dict[str, int] = {}
    progress.plan(sum(min(per_category, len(by_category[n])) for n in chosen) - check_estimate)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mine") if workers > 1 else None
    try:
        for name in chosen:
            order = list(by_category[name])
            rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
            order = [order[k] for k in rng.permutation(len(order))]
            want = min(per_category, len(order))
            good: list[int] = []
            pos = 0
            while len(good) < want and pos < len(order):
                batch = order[pos:pos + want - len(good)]
                pos += len(batch)
                for idx, problem in zip(batch, _map(pool, _check_image, [entries[i].path for i in batch])):
                    if problem is None:
                        good.append(idx)
                    else:
                        unreadable.append((entries[idx].id, problem))
                progress.step(len(batch), f"checking images of {name!r}")
            if len(good) < min_images:
                too_few_readable[name] = len(good)
            else:
                selected[name] = good

        if not selected:
            raise CatalogError(
                f"No category has at least {min_images} readable images whose description names it "
                f"({len(ambiguous)} ambiguous, {unmatched} unmatched of {len(entries)}); check the keywords "
                "or lower --min-images."
            )

        # --- stratified split: the first n_val of each class's random order go to validation
        classes = sorted(selected)
        train_ix: list[tuple[int, int]] = []
        val_ix: list[tuple[int, int]] = []
        for label, name in enumerate(classes):
            n_val = _split_counts(len(selected[name]), val_fraction)
            val_ix += [(label, i) for i in selected[name][:n_val]]
            train_ix += [(label, i) for i in selected[name][n_val:]]
        train_ix.sort()
        val_ix.sort()

        # --- mean/std on a seeded sample of all mined images
        everything = sorted(i for ix in selected.values() for i in ix)
        rng = np.random.default_rng([seed, 1])
        sample = sorted(rng.choice(len(everything), size=min(stats_images, len(everything)), replace=False))
        paths = [entries[everything[k]].path for k in sample]
        progress.plan(len(paths) - stats_estimate)
        total, total_sq, n_pixels, n_used = np.zeros(3), np.zeros(3), 0, 0
        for start in range(0, len(paths), 64):
            for result in _map(pool, _pixel_sums, paths[start:start + 64]):
                if result is not None:
                    total, total_sq = total + result[0], total_sq + result[1]
                    n_pixels += result[2]
                    n_used += 1
            progress.step(len(paths[start:start + 64]), "measuring mean and std")
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    if not n_used:  # every sampled image vanished or changed between the check and now
        raise CatalogError("None of the mined images could be read again to measure their mean and std.")
    mean = total / n_pixels
    std = np.sqrt(np.maximum(total_sq / n_pixels - mean**2, 0.0))

    def samples(ix: list[tuple[int, int]]) -> list[MinedSample]:
        return [MinedSample(entries[i].id, entries[i].path, label, classes[label], entries[i].description)
                for label, i in ix]

    train, val = samples(train_ix), samples(val_ix)
    counts = {name: {"train": sum(s.category == name for s in train), "val": sum(s.category == name for s in val),
                     "matched": len(by_category[name])} for name in classes}
    stats = {
        "format": DATASET_FORMAT,
        "version": DATASET_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_catalog": str(Path(catalog_csv).resolve()),
        "catalog_images": len(entries),
        "catalog_skipped": len(catalog.skipped),
        "keyword_source": keyword_source,
        "classes": classes,
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "stats_images": n_used,
        "stats_size": STATS_SIZE,
        "counts": counts,
        "split": {"train": len(train), "val": len(val), "val_fraction": val_fraction},
        "dropped": {
            "unmatched": unmatched,
            "ambiguous": len(ambiguous),
            "unreadable": len(unreadable),
            "over_per_category": sum(max(0, len(by_category[n]) - per_category) for n in selected),
            "small_categories": small,
            "beyond_n_categories": beyond_cap,
            "too_few_readable": too_few_readable,
        },
        "settings": {"n_categories": n_categories, "per_category": per_category, "min_images": min_images,
                     "val_fraction": val_fraction, "seed": seed, "stats_images": stats_images},
    }
    dataset = MinedDataset(out.absolute(), classes, train, val, _triple(stats["mean"]), _triple(stats["std"]),
                           stats)
    report_md = _report_markdown(dataset, kw, entries, matched, ambiguous, unreadable, catalog.skipped)
    _write_dataset(out, dataset, kw, report_md, proposed=keyword_source == "tfidf")
    dataset.root = out.resolve()
    logger.info("Mined %d classes, %d train / %d val images into %s", len(classes), len(train), len(val), out)
    return dataset


def _write_dataset(out: Path, dataset: MinedDataset, kw: KeywordSet, report_md: str, proposed: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        # stats.json marks a complete dataset: remove it first so a failed rewrite is never mistaken
        # for a finished one, and write it last.
        (out / "stats.json").unlink(missing_ok=True)
        atomic_write_text(out / "classes.txt", "".join(f"{c}\n" for c in dataset.classes))
        for name, rows in (("train.csv", dataset.train), ("val.csv", dataset.val)):
            write_csv(out / name, LIST_COLUMNS,
                      ([s.id, str(s.path), s.label, s.category, s.description] for s in rows))
        source = dataset.stats["keyword_source"]
        header = (f"Keywords used to mine {out.name} (source: {source}); edit and re-run "
                  "`beauty-app dataset mine --keywords FILE`.")
        kw.save(out / "keywords.txt", header)
        if proposed:
            kw.save(out / "proposed_keywords.txt", "Categories proposed by TF-IDF over the catalog descriptions; "
                    "edit and re-run `beauty-app dataset mine --keywords FILE`.")
        else:
            (out / "proposed_keywords.txt").unlink(missing_ok=True)
        atomic_write_text(out / "report.md", report_md)
        atomic_write_text(out / "stats.json", json.dumps(dataset.stats, indent=2, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UserError(f'Could not write the mined dataset to "{out}" ({exc.strerror or exc}).') from None


def _md(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _report_markdown(ds: MinedDataset, kw: KeywordSet, entries: list[CatalogEntry],
                     matched: list[tuple[str, ...]], ambiguous: list[int],
                     unreadable: list[tuple[str, str]], catalog_skipped: list[tuple[str, str]]) -> str:
    s = ds.stats
    d = s["dropped"]
    source = {"tfidf": "proposed by TF-IDF over the descriptions (see `proposed_keywords.txt`)",
              "default": "the built-in list (`default_keywords.txt`)",
              "given": "given by the caller"}.get(s["keyword_source"], f"`{s['keyword_source']}`")
    mean = ", ".join(f"{v:.4f}" for v in ds.mean)
    std = ", ".join(f"{v:.4f}" for v in ds.std)
    lines = [
        f"# Mined dataset: {len(ds.classes)} categories, {len(ds.train) + len(ds.val)} images",
        "",
        f"- Source catalog: `{s['source_catalog']}` ({s['catalog_images']} images"
        + (f", {s['catalog_skipped']} rows skipped by the catalog reader" if s["catalog_skipped"] else "") + ")",
        f"- Keywords: {source}; the ones used are in `keywords.txt`",
        (f"- Settings: at most {s['settings']['n_categories']} categories, at most "
         f"{s['settings']['per_category']} images each, at least {s['settings']['min_images']} images, "
         f"validation fraction {s['settings']['val_fraction']}, seed {s['settings']['seed']}"),
        f"- Split: {len(ds.train)} train, {len(ds.val)} val (stratified per class)",
        f"- RGB mean {mean}; std {std} (from {s['stats_images']} images at {STATS_SIZE}x{STATS_SIZE})",
        f"- Created {s['created']}",
        "",
        ("Several views of one product may land in both train and val: the catalog has no product ids "
         "to group them by."),
        "",
        "## Categories",
        "",
        "| label | category | images | train | val | matched | keywords |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for label, name in enumerate(ds.classes):
        c = s["counts"][name]
        lines.append(f"| {label} | {_md(name)} | {c['train'] + c['val']} | {c['train']} | {c['val']} | "
                     f"{c['matched']} | {_md(', '.join(kw.categories[name]), 120)} |")
    lines += ["", "## Examples", ""]
    for name in ds.classes:
        examples = [x.description for x in (ds.train + ds.val) if x.category == name][:3]
        lines.append(f"### {name}")
        lines += [f"- {_md(e)}" for e in examples] or ["- (no description)"]
        lines.append("")
    lines += ["## Dropped", ""]
    lines.append(f"- {d['unmatched']} descriptions name no category.")
    lines.append(f"- {d['ambiguous']} descriptions name two or more categories (ambiguous) and were left out.")
    for i in ambiguous[:10]:
        lines.append(f"  - {_md(entries[i].description, 120)} \u2192 {', '.join(matched[i])}")
    if d["over_per_category"]:
        lines.append(f"- {d['over_per_category']} matching images were over the per-category cap.")
    if d["small_categories"]:
        listed = ", ".join(f"{n} ({c})" for n, c in sorted(d["small_categories"].items(), key=lambda x: -x[1]))
        lines.append(f"- Categories with fewer than {s['settings']['min_images']} matching images, dropped: {listed}.")
    if d["beyond_n_categories"]:
        listed = ", ".join(f"{n} ({c})" for n, c in d["beyond_n_categories"].items())
        lines.append(f"- Categories beyond the {s['settings']['n_categories']} largest, dropped: {listed}.")
    if d["too_few_readable"]:
        listed = ", ".join(f"{n} ({c})" for n, c in d["too_few_readable"].items())
        lines.append(f"- Categories with too few readable images, dropped: {listed}.")
    lines.append(f"- {len(unreadable)} images could not be read and were replaced by other matches where possible.")
    for item, reason in unreadable[:200]:
        lines.append(f"  - {_md(item, 60)}: {_md(reason, 200)}")
    if len(unreadable) > 200:
        lines.append(f"  - ... and {len(unreadable) - 200} more")
    if catalog_skipped:
        lines.append(f"- {len(catalog_skipped)} catalog rows were skipped by the catalog reader:")
        for item, reason in catalog_skipped[:50]:
            lines.append(f"  - {_md(item, 60)}: {_md(reason, 200)}")
        if len(catalog_skipped) > 50:
            lines.append(f"  - ... and {len(catalog_skipped) - 50} more")
    return "\n".join(lines) + "\n"
