"""The classifier's understanding of a comment's text: language, sentiment, themes, flags.

Pure and offline: no network, nothing downloaded; word lists and the default taxonomy
ship with npsloop. ``analyse()`` is the one call a service needs; the language
detector is built on first use (call ``warm_up()`` when a worker starts).
"""

from services.classifier.text.analysis import MAX_CHARACTERS, NO_COMMENT, TextAnalysis, analyse
from services.classifier.text.evaluation import Evaluation, EvaluationError, Scores, evaluate_csv
from services.classifier.text.flags import Flag, Priority
from services.classifier.text.language import (
    SUPPORTED_LANGUAGES,
    LanguageCode,
    LanguageDecision,
    LanguageMethod,
    decide_language,
    is_warm,
    warm_up,
)
from services.classifier.text.sentiment import Sentiment, SentimentLabel, score_sentiment
from services.classifier.text.taxonomy import (
    KeywordSet,
    Taxonomy,
    TaxonomyError,
    default_taxonomy,
    load_taxonomy,
    parse_taxonomy,
)
from services.classifier.text.themes import KeywordHit

__all__ = [
    "MAX_CHARACTERS",
    "NO_COMMENT",
    "SUPPORTED_LANGUAGES",
    "Evaluation",
    "EvaluationError",
    "Flag",
    "KeywordHit",
    "KeywordSet",
    "LanguageCode",
    "LanguageDecision",
    "LanguageMethod",
    "Priority",
    "Scores",
    "Sentiment",
    "SentimentLabel",
    "Taxonomy",
    "TaxonomyError",
    "TextAnalysis",
    "analyse",
    "decide_language",
    "default_taxonomy",
    "evaluate_csv",
    "is_warm",
    "load_taxonomy",
    "parse_taxonomy",
    "score_sentiment",
    "warm_up",
]
