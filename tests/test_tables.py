"""The table writers: exact text for Markdown, CSV and the terminal, since generated files are diffed."""

from __future__ import annotations

import pandas as pd

from mythbench.analysis.tables import DASH, csv_text, interval, markdown, num, plain


def test_markdown_escapes_pipes_unless_the_caller_did_and_shows_missing_values_as_empty():
    df = pd.DataFrame({"model": ["a|b", "c"], "acc": [0.5, None]})
    assert markdown(df) == "| model | acc |\n|---|---|\n| a\\|b | 0.5 |\n| c |  |"
    assert markdown(df, escape=False).splitlines()[2] == "| a|b | 0.5 |"
    assert markdown(pd.DataFrame({"p|q": [1]})).splitlines()[0] == "| p\\|q |"  # a header cell too


def test_csv_keeps_every_float_digit_leaves_missing_values_empty_and_ends_lines_with_newline():
    df = pd.DataFrame({"a": [0.1 + 0.2, None], "b": ["x", "y,z"]})
    assert csv_text(df) == 'a,b\n0.30000000000000004,x\n,"y,z"\n'


def test_plain_aligns_columns_two_spaces_apart_under_a_rule_without_trailing_blanks():
    df = pd.DataFrame({"model": ["rdt", "control"], "acc": [0.5, None]})
    assert plain(df) == "model    acc\n-------  ---\nrdt      0.5\ncontrol"
    assert plain(pd.DataFrame({"model": ["a|b"]})).splitlines()[2] == "a|b"  # the terminal needs no escapes


def test_numbers_and_intervals_show_a_dash_and_the_reason_where_a_value_is_missing():
    assert (num(0.123456), num(1.23e-05), num(0.5, ".2f"), num(None)) == ("0.1235", "1.23e-05", "0.50", DASH)
    assert interval({"low": 0.25, "high": 0.75}) == "[0.25, 0.75]"
    assert interval({"low": None, "high": 1.0, "reason": "one seed"}) == f"[{DASH}, 1] (one seed)"
