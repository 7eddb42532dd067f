"""Proposing product categories from catalog descriptions with TF-IDF.

:func:`propose_keywords` turns descriptions into a :class:`~beauty_app.training.keywords.KeywordSet`:
the paper's "TF-IDF, then count categories by hand", with the hand knowledge in the built-in
keyword list. It runs in named steps, each a function of the previous one's result:
:func:`_describe_corpus` (TF-IDF scores, title heads and tails, postings), :func:`_candidates`
(known and new terms in score order), :func:`_merge_fragments` (words cut off by fixed-length
descriptions join the term they complete), :func:`_accept_candidates` (the ones that name enough
descriptions on their own) and :func:`_settle` (drop what ends up too small, keep the best
``n_categories``).

Text cannot tell a product kind from a proper name that ends many titles (a brand, a shade, a
person): :mod:`.coherence` checks the proposed categories against their images.

:class:`StageProgress` lives here because :func:`~beauty_app.training.mining.mine_dataset` passes
its own into :func:`propose_categories`, so that proposal and mining share one monotonic "mine"
progress stage.
"""

from __future__ import annotations

import bisect
import functools
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from beauty_app.errors import CatalogError, UserError
from beauty_app.jobs import JobControl, report
from beauty_app.training.keywords import KeywordSet, PhraseMatcher, plural_forms, split_clauses

# --- proposal tuning (see propose_keywords) ---
MIN_HEAD_SHARE = 0.25
"""A new term must end the product title in at least this share of the descriptions containing it."""
MIN_OWN_SHARE = 0.5
"""A candidate category must be the only category in at least this share of the descriptions it matches."""
MERGE_SHARE = 0.5
"""A phrase that covers more than this share of an accepted word's descriptions absorbs it ("hair dryer" + "dryer")."""
FRAGMENT_END_SHARE = 0.9
"""A new term that ends the whole description in at least this share of the descriptions containing it,
and is the beginning of a more frequent term, is a cut-off fragment of that term ("rosew" of "rosewood").
A cut makes a fragment only at the end; a real word ("lip" beside "lipstick") also stands inside titles."""
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
WORD_TOKEN = r"(?u)\b[^\W\d_]{2,}\b"  # words of two or more letters: no numbers, sizes or codes

Vocabulary = KeywordSet | Literal["default"] | None
"""Known categories for the proposal: the built-in list, a keyword set, or none (data only)."""

Candidate = tuple[float, str, list[str], bool]
"""(TF-IDF score, category name, synonyms, new: not from the vocabulary)."""


class StageProgress:
    """One monotonic "mine" progress stage whose total grows as later phases become known."""

    def __init__(self, job: JobControl | None) -> None:
        self.job, self.done, self.total = job, 0, 0

    def plan(self, n: int) -> None:
        """Add ``n`` steps to the total (negative to correct an estimate)."""
        self.total += n

    def step(self, n: int = 1, message: str = "") -> None:
        """Count ``n`` finished steps and report them."""
        self.done += n
        report(self.job, "mine", self.done, max(self.total, self.done), message)


def check_positive(**values: float) -> None:
    """Raise a :class:`UserError` naming the first value that is not a whole number of at least 1."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name.replace('_', ' ')} must be a whole number of at least 1, not {value!r}.")



@functools.cache
def stop_words() -> frozenset[str]:
    """Words that never name a product: scikit-learn's English stop words and :data:`FILLER_WORDS`."""
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
    stop = stop_words()
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
    vocabulary: Vocabulary = "default",
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
    return propose_categories(descriptions, n_categories, min_images, vocabulary, StageProgress(job))


def propose_categories(descriptions: Sequence[str], n_categories: int, min_images: int,
                       vocabulary: Vocabulary, progress: StageProgress) -> KeywordSet:
    """:func:`propose_keywords` reporting into a progress stage the caller owns (see the module docstring)."""
    check_positive(n_categories=n_categories, min_images=min_images)
    vocab = KeywordSet.default() if vocabulary == "default" else vocabulary or KeywordSet({})
    corpus = _describe_corpus(descriptions)
    candidates = _merge_fragments(corpus, _candidates(corpus, vocab, n_categories, min_images))
    progress.plan(len(candidates) + len(corpus.docs))
    accepted, scores = _accept_candidates(corpus, candidates, vocab, min_images, progress)
    accepted = _settle(corpus, accepted, scores, vocab, n_categories, min_images)
    progress.step(len(corpus.docs), f"{len(accepted)} categories proposed")
    if not accepted:
        raise CatalogError(
            f"No product category is named by at least {min_images} descriptions; lower --min-images or "
            "give a keyword file with --keywords."
        )
    return KeywordSet({n: accepted[n] for n in sorted(accepted, key=lambda n: -scores[n])}, vocab.ignore)


@dataclass
class _Corpus:
    """The descriptions as the proposal reads them: clauses, TF-IDF scores, title heads, postings.

    Attributes:
        segments: Each description's clauses of words (interned).
        docs: Indexes of the descriptions that have words.
        term_index: TF-IDF term (word or two-word phrase) -> column.
        score: Each term's TF-IDF summed over all descriptions.
        doc_freq: Descriptions containing each term.
        head_count: Descriptions whose title ends with the term (see :func:`_head_terms`).
        tail_count: Descriptions whose last word or last two words are the term (where a
            fixed-length cut leaves a fragment).
        postings: Word -> descriptions containing it.
    """

    segments: list[list[list[str]]]
    docs: list[int]
    term_index: dict[str, int]
    score: np.ndarray
    doc_freq: np.ndarray
    head_count: Counter[str]
    tail_count: Counter[str]
    postings: dict[str, list[int]]

    def docs_with(self, phrases: Iterable[str]) -> set[int]:
        """Descriptions that contain every word of one of the phrases (the last word maybe plural)."""
        postings = self.postings
        found: set[int] = set()
        for phrase in phrases:
            words = phrase.split()
            last = words[-1]
            hits = set(postings.get(last, ())) | set(postings.get(last + "s", ())) | set(postings.get(last + "es", ()))
            for w in words[:-1]:
                hits &= set(postings.get(w, ()))
            found |= hits
        return found

    def term_score(self, phrase: str) -> float:
        """The summed TF-IDF of a phrase and its plural forms."""
        words = tuple(phrase.split())
        return sum(float(self.score[self.term_index[" ".join(f)]]) for f in [words, *plural_forms(words)]
                   if " ".join(f) in self.term_index)


def _describe_corpus(descriptions: Sequence[str]) -> _Corpus:
    """Step 1: TF-IDF over the descriptions, plus the title heads and word postings the later steps need."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Interned words: a catalog of 500K titles would otherwise hold millions of copies of "spray".
    segs = [[[sys.intern(t) for t in seg] for seg in split_clauses(d)] for d in descriptions]
    texts = [" ".join(" ".join(s) for s in seg) for seg in segs]
    docs = [i for i, t in enumerate(texts) if t]
    if not docs:
        raise CatalogError("None of the descriptions contains words to propose categories from.")

    vectorizer = TfidfVectorizer(
        lowercase=False, token_pattern=WORD_TOKEN, ngram_range=(1, 2), min_df=2 if len(docs) >= 2 else 1,
        stop_words=sorted(stop_words()), sublinear_tf=True, dtype=np.float32,
    )
    try:
        tfidf = vectorizer.fit_transform([texts[i] for i in docs])
    except ValueError:  # empty vocabulary: only numbers, stop words or one-off words
        raise CatalogError(
            "The descriptions share no words that could name a product category (only numbers, sizes or "
            "one-off words)."
        ) from None

    head_count: Counter[str] = Counter()
    tail_count: Counter[str] = Counter()
    for i in docs:
        head_count.update(set(_head_terms(segs[i])))
        last = segs[i][-1]
        tail_count.update({last[-1], " ".join(last[-2:])})

    postings: dict[str, list[int]] = {}
    for i in docs:
        for tok in {t for seg in segs[i] for t in seg}:
            postings.setdefault(tok, []).append(i)
    return _Corpus(segs, docs, vectorizer.vocabulary_, np.asarray(tfidf.sum(axis=0)).ravel(),
                   tfidf.getnnz(axis=0), head_count, tail_count, postings)


def _candidates(corpus: _Corpus, vocab: KeywordSet, n_categories: int, min_images: int) -> list[Candidate]:
    """Step 2: every vocabulary category by score, then the new title-head terms by score."""
    term_index, doc_freq = corpus.term_index, corpus.doc_freq
    known_forms = {" ".join(f) for syns in vocab.categories.values() for s in syns
                   for f in [tuple(s.split()), *plural_forms(tuple(s.split()))]}
    known_forms |= set(vocab.ignore)
    known = sorted(((sum(corpus.term_score(s) for s in syns), name, list(syns), False)
                    for name, syns in vocab.categories.items()), key=lambda c: -c[0])
    vocab_matcher = PhraseMatcher(vocab)
    new_terms = []
    for term, col in term_index.items():
        if term in known_forms or doc_freq[col] < min_images:
            continue
        if vocab_matcher.match([term.split()]):
            continue  # names a known category already ("volumizing mascara"): a kind of it, not a new one
        if term.endswith("s") and (term[:-1] in term_index or term[:-2] in term_index):
            continue  # a plural: its singular matches it anyway
        if corpus.head_count[term] / doc_freq[col] >= MIN_HEAD_SHARE:
            new_terms.append((corpus.term_score(term), term, [term], True))
    new_terms.sort(key=lambda c: (-c[0], c[1]))
    return known + new_terms[: n_categories * MAX_NEW_TERMS_PER_CATEGORY]


def cut_completion(term: str, ends: int, frequency: Callable[[str], int], sorted_terms: Sequence[str]) -> str | None:
    """The term that ``term`` is a cut-off fragment of, or None when it is a word of its own.

    A fragment ends most of its descriptions (the cut: ``ends`` of them, at least
    :data:`FRAGMENT_END_SHARE` of ``frequency(term)``) and begins a more frequent term; the most
    frequent such term is the one it was cut from. Shared by the category proposal and the title
    labels (:mod:`.titles`).

    Args:
        term: A word or phrase.
        ends: Descriptions whose last words are ``term``.
        frequency: Descriptions containing a term.
        sorted_terms: Every term, sorted (the candidates for the completion).
    """
    own = frequency(term)
    if ends < FRAGMENT_END_SHARE * own:
        return None
    start = bisect.bisect_right(sorted_terms, term)
    end = bisect.bisect_left(sorted_terms, term + "\uffff", lo=start)
    longer = sorted_terms[start:end]  # every term that starts with `term`, itself excluded
    if not longer:
        return None
    best = max(longer, key=lambda t: (frequency(t), t))
    return best if frequency(best) > own else None


def _completion(corpus: _Corpus, term: str, sorted_terms: list[str]) -> str | None:
    """:func:`cut_completion` over the proposal's corpus."""
    return cut_completion(term, corpus.tail_count[term], lambda t: int(corpus.doc_freq[corpus.term_index[t]]),
                          sorted_terms)


def _merge_fragments(corpus: _Corpus, candidates: list[Candidate]) -> list[Candidate]:
    """Step 2b: new terms cut off by fixed-length descriptions join the candidate they were cut from.

    Catalogs that cut descriptions at a fixed length leave "rosew", "rosewo" and "rosewood bl"
    for one name "rosewood blush"; each ends its descriptions and begins a more frequent term, its
    completion (:func:`_completion`). A fragment becomes a synonym of the candidate that has its
    completion as a synonym, else of the one candidate with a synonym starting with it ("rosewood"
    in "rosewood blush"), so its images keep their label; it is dropped when no single candidate
    claims it ("hydr" of a product line shared by several categories).
    """
    sorted_terms = sorted(corpus.term_index)
    completions = {i: _completion(corpus, name, sorted_terms) for i, (_, name, _, new) in enumerate(candidates)
                   if new and name in corpus.term_index}
    fragments = {i: completion for i, completion in completions.items() if completion is not None}
    if not fragments:
        return candidates
    merged = [(score, name, list(synonyms), new) for score, name, synonyms, new in candidates]
    for i, completion in fragments.items():
        whole = [j for j, c in enumerate(candidates) if j not in fragments and completion in c[2]]
        if not whole:
            whole = [j for j, c in enumerate(candidates) if j not in fragments
                     and any(syn.startswith(completion + " ") for syn in c[2])]
        if len(whole) == 1:
            merged[whole[0]][2].append(candidates[i][1])
    return [c for i, c in enumerate(merged) if i not in fragments]


def _accept_candidates(corpus: _Corpus, candidates: list[Candidate], vocab: KeywordSet, min_images: int,
                       progress: StageProgress) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Step 3: keep each candidate that alone names enough descriptions; phrases absorb their words.

    Returns:
        ``{name: synonyms}`` in acceptance order, and each accepted name's score.
    """
    accepted: dict[str, list[str]] = {}
    scores: dict[str, float] = {}
    is_new: set[str] = set()
    for cand_score, name, synonyms, new in candidates:
        progress.step(1, f"trying category {name!r}")
        if name in accepted:
            continue
        cand_docs = corpus.docs_with(synonyms)
        if len(cand_docs) < min_images:
            continue
        try:
            matcher = PhraseMatcher(KeywordSet({**accepted, name: synonyms}, vocab.ignore))
        except CatalogError:  # the term is already a synonym of an accepted category
            continue
        results = [matcher.match(corpus.segments[i]) for i in cand_docs]
        hits = sum(name in r for r in results)
        own = sum(r == {name} for r in results)
        if own < min_images or own < MIN_OWN_SHARE * hits:
            continue
        absorbed = None
        if new:
            for other in [o for o in accepted if o in is_new and len(accepted[o]) == 1]:
                if f" {other} " in f" {name} ":
                    other_docs = corpus.docs_with(accepted[other])
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
    return accepted, scores


def _settle(corpus: _Corpus, accepted: dict[str, list[str]], scores: dict[str, float], vocab: KeywordSet,
            n_categories: int, min_images: int) -> dict[str, list[str]]:
    """Step 4: keep the ``n_categories`` best that still name ``min_images`` descriptions unambiguously."""
    # Dropping a category can make others ambiguous or free their words, so settle iteratively.
    doc_segs = [corpus.segments[i] for i in corpus.docs]
    while True:
        order = sorted(accepted, key=lambda n: -scores[n])[:n_categories]
        matcher = PhraseMatcher(KeywordSet({n: accepted[n] for n in order}, vocab.ignore))
        counts: Counter[str] = Counter()
        for found in map(matcher.match, doc_segs):
            if len(found) == 1:
                counts.update(found)
        keep = [n for n in order if counts[n] >= min_images]
        if len(keep) == len(accepted):
            return accepted
        accepted = {n: accepted[n] for n in keep}
