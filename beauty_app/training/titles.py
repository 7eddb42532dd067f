"""Title labels: a multi-label vocabulary of frequent description n-grams, so no image needs one category.

Categories (:mod:`.propose`, :mod:`.keywords`) give an image one label only when its description
names exactly one of them; on a messy catalog most descriptions name none or several. Title labels
are the words and phrases (brands, product lines, product kinds) that descriptions share, as the
4th-placed solution of the 2020 challenge trained a ResNet-50 on 3,000 title n-grams: every image
whose description holds one of them has a training target.

:func:`title_labels` builds them in named steps:

1. **Count**: scikit-learn's ``CountVectorizer`` over 1- to 3-word n-grams of adjacent words inside
   each clause (:func:`~beauty_app.training.keywords.split_clauses`): words of two or more letters;
   English stop words and :data:`~beauty_app.training.propose.FILLER_WORDS` break a phrase, so
   "Lipstick Gift Set with Mascara" gives "lipstick" and "mascara", never "lipstick mascara".
2. **Merge fragments**: descriptions cut at a fixed length end in pieces of a name ("rosew",
   "rosewo", "velo rosewood bl"); each joins the term it was cut from
   (:func:`~beauty_app.training.propose.cut_completion`, the proposal's rule), so its images keep
   the label of the whole name.
3. **Drop duplicates**: an n-gram that is a sub-string of a longer one with the very same images
   ("rosewood" when every "rosewood" is a "rosewood blush") adds nothing and goes.
4. **Keep** the ``max_labels`` most frequent n-grams named by at least ``min_images`` descriptions
   and by at most :data:`MAX_LABEL_SHARE` of them (a word in most titles tells nothing apart).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from beauty_app.training.keywords import split_clauses
from beauty_app.training.propose import WORD_TOKEN, StageProgress, cut_completion, stop_words

MAX_TITLE_LABELS = 3000
"""Default vocabulary size (the 2020 challenge solution's 3,000 title n-grams)."""
NGRAM_RANGE = (1, 3)
"""Shortest and longest n-gram, in words."""
MAX_LABEL_SHARE = 0.5
"""An n-gram in more than this share of the descriptions is no label (it tells nothing apart)."""

_WORD = re.compile(WORD_TOKEN.removeprefix("(?u)\\b").removesuffix("\\b"))


@dataclass
class TitleLabels:
    """The title vocabulary of a catalog and each description's labels.

    Attributes:
        vocabulary: Label names (n-grams), most frequent first; a label's index is its position.
        per_description: Each description's label indices, sorted (empty when it has none).
        images: Descriptions carrying each label.
        fragments: Cut-off n-grams merged into the label they were cut from (fragment -> label).
    """

    vocabulary: list[str]
    per_description: list[tuple[int, ...]]
    images: list[int]
    fragments: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> int:
        """Descriptions with at least one title label."""
        return sum(bool(labels) for labels in self.per_description)


def _runs(clause: list[str]) -> list[list[str]]:
    """The runs of adjacent label words in a clause: stop words, numbers and single letters end a run."""
    stop = stop_words()
    runs: list[list[str]] = [[]]
    for word in clause:
        if word in stop or not _WORD.fullmatch(word):
            runs.append([])
        else:
            runs[-1].append(word)
    return [run for run in runs if run]


def _ngrams(description: str) -> list[str]:
    """The analyzer: 1- to 3-word n-grams of adjacent words (never across a stop word or a clause)."""
    low, high = NGRAM_RANGE
    out: list[str] = []
    for clause in split_clauses(description):
        for words in _runs(clause):
            for n in range(low, high + 1):
                out += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    return out


def _tails(description: str) -> set[str]:
    """The last one to three words of the description (where a fixed-length cut leaves a fragment)."""
    clauses = split_clauses(description)
    if not clauses:
        return set()
    last = clauses[-1]
    return {" ".join(last[-n:]) for n in range(1, min(NGRAM_RANGE[1], len(last)) + 1)}


def title_labels(descriptions: Sequence[str], *, max_labels: int = MAX_TITLE_LABELS, min_images: int = 10,
                 progress: StageProgress | None = None) -> TitleLabels:
    """Build the title vocabulary of a catalog and label every description (see the module docstring).

    Args:
        descriptions: All catalog descriptions.
        max_labels: Most labels to keep (the most frequent).
        min_images: Fewest descriptions a label needs.
        progress: Optional progress stage (one step per description).

    Returns:
        The labels; an empty vocabulary when no n-gram is frequent enough.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    n_docs = len(descriptions)
    empty = TitleLabels([], [()] * n_docs, [])
    if not n_docs:
        return empty
    # min_df=2: a fragment seen once could only ever rescue one image; it keeps the vocabulary small.
    vectorizer = CountVectorizer(analyzer=_ngrams, min_df=2 if n_docs >= 2 else 1, binary=True, dtype=np.int32)
    try:
        counts = vectorizer.fit_transform(descriptions).tocsc()
    except ValueError:  # no n-gram in two descriptions
        return empty
    if progress is not None:
        progress.step(n_docs, "counting title n-grams")
    terms = [str(t) for t in vectorizer.get_feature_names_out()]
    column = {t: j for j, t in enumerate(terms)}
    frequency = counts.getnnz(axis=0)
    tails: Counter[str] = Counter()
    for description in descriptions:
        tails.update(t for t in _tails(description) if t in column)

    # Merge fragments into the term they were cut from (a completion is always more frequent, so
    # following completions ends).
    sorted_terms = sorted(terms)
    completion = {}
    for term in tails:
        whole = cut_completion(term, tails[term], lambda t: int(frequency[column[t]]), sorted_terms)
        if whole is not None:
            completion[term] = whole

    def root(term: str) -> str:
        while term in completion:
            term = completion[term]
        return term

    owner = np.array([column[root(t)] for t in terms])
    merge = sparse.csr_matrix((np.ones(len(terms), np.int32), (np.arange(len(terms)), owner)),
                              shape=(len(terms), len(terms)))
    merged = (counts @ merge).tocsc()
    merged.data[:] = 1
    images = merged.getnnz(axis=0)
    candidates = [j for j in range(len(terms)) if terms[j] not in completion
                  and min_images <= images[j] <= MAX_LABEL_SHARE * n_docs]

    # Drop an n-gram that is a sub-string of a longer candidate with exactly the same images.
    same_images: dict[bytes, list[int]] = defaultdict(list)
    for j in candidates:
        same_images[merged.indices[merged.indptr[j]:merged.indptr[j + 1]].tobytes()].append(j)
    redundant = {j for group in same_images.values() if len(group) > 1 for j in group
                 if any(k != j and terms[j] in terms[k] and len(terms[k]) > len(terms[j]) for k in group)}
    kept = sorted((j for j in candidates if j not in redundant), key=lambda j: (-images[j], terms[j]))[:max_labels]
    vocabulary = [terms[j] for j in kept]

    rows = merged[:, kept].tocsr()
    per_description = [tuple(int(k) for k in np.sort(rows.indices[rows.indptr[i]:rows.indptr[i + 1]]))
                       for i in range(n_docs)]
    names = set(vocabulary)
    fragments = {t: terms[owner[column[t]]] for t in completion if terms[owner[column[t]]] in names}
    return TitleLabels(vocabulary, per_description, [int(images[j]) for j in kept], fragments)
