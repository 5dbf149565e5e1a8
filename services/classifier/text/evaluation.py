"""How well comment sentiment matches labelled data: ``npsloop eval-text FILE.csv``.

The CSV has a header with ``text`` and ``label`` (0 negative, 1 positive) and may have
``lang``; a row's ``lang`` is passed as the survey locale and groups the results, and
without it rows are grouped by the language the classifier decided on. A neutral
prediction counts as wrong (the labels have no neutral), so accuracy and macro-F1 are
reported with coverage, the share of comments that got a positive or negative label.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.classifier.text.language import decide_language, warm_up
from services.classifier.text.sentiment import SentimentLabel, score_sentiment

REQUIRED_COLUMNS = ("text", "label")
OVERALL = "overall"


class EvaluationError(ValueError):
    """The labelled file cannot be evaluated; the message says where and why."""


@dataclass(frozen=True)
class LabelledComment:
    """One row: the comment, whether it is positive, and the language it is said to be in."""

    text: str
    positive: bool
    lang: str | None = None


@dataclass(frozen=True)
class Scores:
    """Accuracy, macro-F1 over negative and positive, and coverage, on ``count`` comments."""

    count: int
    accuracy: float
    macro_f1: float
    coverage: float


@dataclass(frozen=True)
class Evaluation:
    """The scores of one labelled file per language group and overall, and how long it took."""

    source: str
    by_language: tuple[tuple[str, Scores], ...]
    overall: Scores
    seconds: float


def read_labelled(path: str | Path) -> list[LabelledComment]:
    """The rows of a labelled CSV file; raises EvaluationError naming the file and line."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(_rows(csv.DictReader(handle), str(path)))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvaluationError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise EvaluationError(f"{path}: not valid CSV: {exc}") from None


def evaluate(comments: Iterable[LabelledComment]) -> tuple[tuple[tuple[str, Scores], ...], Scores]:
    """Scores per language group (in order of first appearance) and overall."""
    outcomes: dict[str, list[tuple[bool, SentimentLabel]]] = {}
    for comment in comments:
        decision = decide_language(comment.text, comment.lang)
        label = score_sentiment(comment.text, decision.code).label
        group = (comment.lang or decision.code or "unknown").strip().lower()
        outcomes.setdefault(group, []).append((comment.positive, label))
    everything = [outcome for group in outcomes.values() for outcome in group]
    by_language = tuple((group, _scores(rows)) for group, rows in outcomes.items())
    return by_language, _scores(everything)


def evaluate_csv(path: str | Path) -> Evaluation:
    """Read a labelled CSV file and score the classifier's sentiment against it."""
    comments = read_labelled(path)
    warm_up()  # the detector's one-off build is not the classifier's speed
    started = time.perf_counter()
    by_language, overall = evaluate(comments)
    return Evaluation(
        source=str(path),
        by_language=by_language,
        overall=overall,
        seconds=time.perf_counter() - started,
    )


def format_evaluation(evaluation: Evaluation) -> str:
    """A readable table of an evaluation."""
    count = evaluation.overall.count
    each = evaluation.seconds / count * 1000 if count else 0.0
    lines = [
        f"{evaluation.source}: {count:,} comment{'' if count == 1 else 's'} in "
        f"{evaluation.seconds:.1f} s "
        f"({each:.2f} ms each)",
        f"{'language':<10} {'comments':>9} {'accuracy':>9} {'macro-F1':>9} {'coverage':>9}",
    ]
    for group, scores in (*evaluation.by_language, (OVERALL, evaluation.overall)):
        lines.append(
            f"{group:<10} {scores.count:>9,} {scores.accuracy:>9.3f} "
            f"{scores.macro_f1:>9.3f} {scores.coverage:>9.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``npsloop eval-text FILE.csv [FILE.csv ...]``: print each file's table; 2 on error."""
    parser = argparse.ArgumentParser(
        prog="npsloop eval-text",
        description="Measure comment sentiment against labelled comments "
        "(CSV with text,label[,lang]; label 0 negative, 1 positive).",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.csv")
    arguments = parser.parse_args(argv)
    out = out or sys.stdout
    for index, path in enumerate(arguments.files):
        try:
            evaluation = evaluate_csv(path)
        except EvaluationError as exc:
            print(f"npsloop eval-text: error: {exc}", file=sys.stderr)
            return 2
        if index:
            print(file=out)
        print(format_evaluation(evaluation), file=out)
    return 0


def _rows(reader: csv.DictReader[str], source: str) -> Iterator[LabelledComment]:
    columns = [name.strip().lower() for name in reader.fieldnames or ()]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        found = ", ".join(columns) if columns else "no header at all"
        raise EvaluationError(
            f"{source}: missing column {' and '.join(repr(name) for name in missing)} "
            f"(the header needs text,label and may have lang; found {found})"
        )
    reader.fieldnames = columns
    for row in reader:
        label = (row.get("label") or "").strip()
        if label not in ("0", "1"):
            raise EvaluationError(
                f"{source}, line {reader.line_num}: label must be 0 (negative) or "
                f"1 (positive), not {label!r}"
            )
        lang = (row.get("lang") or "").strip() or None
        yield LabelledComment(text=row.get("text") or "", positive=label == "1", lang=lang)


def _scores(outcomes: Sequence[tuple[bool, SentimentLabel]]) -> Scores:
    count = len(outcomes)
    if not count:
        return Scores(count=0, accuracy=0.0, macro_f1=0.0, coverage=0.0)
    predicted = [
        None if label is SentimentLabel.NEUTRAL else label is SentimentLabel.POSITIVE
        for _, label in outcomes
    ]
    truth = [positive for positive, _ in outcomes]
    correct = sum(guess == actual for guess, actual in zip(predicted, truth, strict=True))
    f1s = []
    for cls in (False, True):
        tp = sum(g == cls and a == cls for g, a in zip(predicted, truth, strict=True))
        fp = sum(g == cls and a != cls for g, a in zip(predicted, truth, strict=True))
        fn = sum(g != cls and a == cls for g, a in zip(predicted, truth, strict=True))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return Scores(
        count=count,
        accuracy=correct / count,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        coverage=sum(guess is not None for guess in predicted) / count,
    )
