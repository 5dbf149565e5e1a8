"""Evaluating comment sentiment against a labelled CSV: the figures and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.classifier.text import EvaluationError, evaluate_csv
from services.classifier.text.evaluation import main


def write(tmp_path: Path, text: str, name: str = "labelled.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


LABELLED = """\
text,label,lang
"Fantastisk service, tusind tak",1,da
"Elendig service, meget skuffet",0,da
Jättebra service,1,sv
Varan kom på tisdag,0,sv
"Excellent service, thank you",1,en
"Terrible service, very disappointed",1,en
"""


def test_accuracy_macro_f1_and_coverage_per_language_and_overall(tmp_path: Path) -> None:
    evaluation = evaluate_csv(write(tmp_path, LABELLED))
    scores = dict(evaluation.by_language)
    assert list(scores) == ["da", "sv", "en"]
    # da: both right.
    assert (scores["da"].count, scores["da"].accuracy, scores["da"].coverage) == (2, 1.0, 1.0)
    assert scores["da"].macro_f1 == 1.0
    # sv: the neutral one counts as wrong, and lowers coverage.
    assert (scores["sv"].accuracy, scores["sv"].coverage) == (0.5, 0.5)
    assert scores["sv"].macro_f1 == pytest.approx((1.0 + 0.0) / 2)
    # en: the second is labelled positive but reads negative.
    assert scores["en"].accuracy == 0.5
    assert scores["en"].macro_f1 == pytest.approx((0.0 + 2 / 3) / 2)
    overall = evaluation.overall
    assert overall.count == 6
    assert overall.accuracy == pytest.approx(4 / 6)
    assert overall.coverage == pytest.approx(5 / 6)
    # negative: tp 1, fp 1, fn 1 -> 0.5; positive: tp 3, fp 0, fn 1 -> 6/7
    assert overall.macro_f1 == pytest.approx((0.5 + 6 / 7) / 2)
    assert evaluation.seconds >= 0


def test_without_a_lang_column_rows_are_grouped_by_the_detected_language(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "text,label\n"
        "The parcel arrived quickly and the staff were lovely,1\n"
        "Das Paket kam viel zu spät und niemand hat geantwortet,0\n"
        "Ok,1\n",
    )
    assert [group for group, _ in evaluate_csv(path).by_language] == ["en", "de", "unknown"]


def test_a_header_with_a_byte_order_mark_and_odd_case_is_read(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffText,Label\nFin service,1\n".encode())
    assert evaluate_csv(path).overall.count == 1


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"nowhere\.csv: no such file"):
        evaluate_csv(tmp_path / "nowhere.csv")


def test_a_missing_column_is_named_with_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "comment,label\nFin service,1\n")
    with pytest.raises(EvaluationError, match=r"missing column 'text' .*found comment, label"):
        evaluate_csv(path)


def test_an_empty_file_says_it_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match=r"missing column 'text' and 'label'.*no header"):
        evaluate_csv(write(tmp_path, ""))


@pytest.mark.parametrize("label", ["2", "positive", "", "1.0"])
def test_a_bad_label_is_named_with_its_line(tmp_path: Path, label: str) -> None:
    path = write(tmp_path, f'text,label\nFin service,1\n"Two\nlines",0\nDårlig,{label}\n')
    with pytest.raises(EvaluationError, match=rf"line 5: label must be 0 .* not '{label}'"):
        evaluate_csv(path)


def test_main_prints_a_table_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write(tmp_path, LABELLED, "first.csv")
    second = write(tmp_path, "text,label\nFin service,1\n", "second.csv")
    assert main([str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert f"{first}: 6 comments in " in out and f"{second}: 1 comment in " in out
    assert "language    comments  accuracy  macro-F1  coverage" in out
    assert "da                 2     1.000     1.000     1.000" in out
    assert "overall            6     0.667     0.679     0.833" in out


def test_main_reports_an_error_and_exits_with_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "nowhere.csv")]) == 2
    assert "npsloop eval-text: error: " in capsys.readouterr().err
