"""Keyword sets (categories with their synonyms) and the rules that match them in descriptions.

The paper (supplement A.1) counted 44 rough product categories in the Perfect-500K descriptions
by hand and took the images whose description names one of them. A :class:`KeywordSet` holds such
categories, either proposed from the descriptions (:mod:`beauty_app.training.propose`), the
built-in list of 44 beauty categories (``default_keywords.txt``) or a file the user edited. File
format, one category per line::

    # comment
    lipstick: lipstick, lip stick, lip colour, lip color
    !ignore: razor burn, lipstick case

Matching (:func:`match_categories`, :func:`assign_categories`): descriptions are lower-cased,
split into clauses at ``, ; | ( ) [ ]`` and `` - ``, and into words (hyphens separate words, so
"eye-shadow" is "eye shadow"). Within a clause the words are scanned left to right; at each
position the *longest* synonym or ignore phrase starting there is taken and its words are used
up, so "sleeping eye mask" counts as "eye mask" and never also as "mask". A final "s"/"es" on a
synonym's last word is accepted ("lipsticks"). Negated words never count: "X free" (as in
"fragrance free"), "free of/from X" and "without X". A description that names exactly one
category gets it; one naming none, or two or more (ambiguous), gets ``None``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from beauty_app.fileio import atomic_write_text
from beauty_app.errors import CatalogError, UserError

DEFAULT_KEYWORDS_FILE = "default_keywords.txt"
"""The built-in keyword file shipped next to this module (``--keywords default``)."""

_CLAUSE_SPLIT = re.compile(r"[,;|()\[\]{}\n\r\t]|\s[-\u2013\u2014/]\s")
_WORD = re.compile(r"[^\W_]+")
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


def split_clauses(text: str) -> list[list[str]]:
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


def plural_forms(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The phrase with "s" and with "es" added to its last word (the plurals matching accepts)."""
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


class PhraseMatcher:
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
            for form in plural_forms(key):
                table.setdefault(form, name)
        table.update(exact)  # a listed word beats another's plural form ("glass" vs "gla"+"ss")
        self.table = table
        self.max_len = max((len(k) for k in table), default=0)
        self.first_words = frozenset(k[0] for k in table)

    def match(self, segments: list[list[str]]) -> set[str]:
        """The categories named in a description's clauses (from :func:`split_clauses`)."""
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
    matcher = PhraseMatcher(keywords)
    return [tuple(sorted(matcher.match(split_clauses(d)))) for d in descriptions]


def assign_categories(descriptions: Sequence[str], keywords: KeywordSet) -> list[str | None]:
    """The one category each description names, or ``None`` when it names none or several.

    Args:
        descriptions: Product texts.
        keywords: Categories and synonyms.

    Returns:
        One category name or ``None`` per description.
    """
    return [m[0] if len(m) == 1 else None for m in match_categories(descriptions, keywords)]

