"""Retrieval evaluation: run every query of a folder against an index and score MAP@k."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..challenge_files import read_truth
from ..errors import UserError
from ..jobs import JobControl
from ..retrieval.search import SearchSession, query_files_in
from .metrics import MapResult, mean_average_precision


@dataclass
class EvalReport:
    """MAP@k, per-query AP, the ranking of every query and the queries that could not be read."""

    result: MapResult
    rankings: dict[str, list[str]]
    failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def worst(self, count: int = 10) -> list[tuple[str, float]]:
        return sorted(self.result.per_query.items(), key=lambda item: (item[1], item[0]))[:count]

    def as_dict(self) -> dict:
        return {
            "map": round(self.result.value, 6), "k": self.result.k, "denominator": self.result.denominator,
            "queries": len(self.result.per_query), "missing_queries": self.result.missing_queries,
            "failures": [{"query": q, "reason": r} for q, r in self.failures],
            "per_query": {q: round(ap, 6) for q, ap in self.result.per_query.items()},
            "elapsed_s": round(self.elapsed_s, 3),
        }


def evaluate(session: SearchSession, queries_dir: str | Path, truth_csv: str | Path, *, k: int = 7,
             denominator: str = "nrel", query_expansion: int = 0, job: JobControl | None = None) -> EvalReport:
    """Search every query image that the truth file names and score the rankings."""
    truth = read_truth(truth_csv)
    files: dict[str, Path] = {}
    clashes: list[str] = []
    for path in query_files_in(queries_dir):
        if path.stem in files and path.stem in truth:
            clashes.append(f"{files[path.stem].name} and {path.name}")
        files.setdefault(path.stem, path)
    if clashes:
        # The query id is the file stem: scoring one of the two would drop the other in silence.
        raise UserError(f"Query ids come from file names, and {len(clashes)} queries in {queries_dir} have two "
                        f"images ({'; '.join(clashes[:3])}{'; ...' if len(clashes) > 3 else ''}); "
                        f"keep one image per query id.")
    wanted = [files[q] for q in truth if q in files]
    if not wanted:
        raise UserError(f"None of the {len(truth)} queries in {Path(truth_csv).name} has an image in {queries_dir}.")
    started = time.perf_counter()
    results = session.search_files(wanted, k=k, query_expansion=query_expansion, job=job)
    rankings = {Path(r.query).stem: [hit.id for hit in r.hits] for r in results if r.error is None}
    failures = [(Path(r.query).stem, r.error) for r in results if r.error is not None]
    scored = mean_average_precision(rankings, truth, k=k, denominator=denominator)
    return EvalReport(scored, rankings, failures, time.perf_counter() - started)
