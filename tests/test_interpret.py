"""GS1 interpretation: published examples, routing by AIM id, every error and warning code."""

from __future__ import annotations

from datetime import date

import pytest

from gs1.interpret import BarcodePattern, Interpretation, interpret

TODAY = date(2025, 6, 1)
GS = "\x1d"


def parse(text: str, *patterns: BarcodePattern, today: date = TODAY) -> Interpretation:
    return interpret(text, patterns, today)


# --- published examples ---------------------------------------------------------------


def test_gen_specs_gtin_expiry_lot() -> None:
    # GS1 General Specifications: (01)09506000134352(17)201225(10)ABC123 in GS1-128.
    r = parse("]C10109506000134352172012251" + "0ABC123")
    assert r.ok, r.errors
    assert (r.symbology, r.kind, r.gtin, r.lot) == ("]C1", "gs1", "09506000134352", "ABC123")
    assert r.expiry == date(2020, 12, 25)
    assert r.ais == (("01", "09506000134352"), ("17", "201225"), ("10", "ABC123"))


def test_biip_docs_message_with_best_before() -> None:
    # biip docs: "010703206980498815210526100329" = (01)07032069804988(15)210526(10)0329.
    r = parse("010703206980498815210526100329")
    assert r.ok and r.kind == "gs1"
    assert (r.gtin, r.best_before, r.lot, r.expiry) == (
        "07032069804988",
        date(2021, 5, 26),
        "0329",
        None,
    )


def test_gs_separated_serial_and_lot_in_datamatrix() -> None:
    r = parse("]d2010950600013435221SER1" + GS + "10LOT9" + GS + "17251231")
    assert r.ok and (r.serial, r.lot, r.expiry) == ("SER1", "LOT9", date(2025, 12, 31))


def test_logistic_label_sscc_content_count() -> None:
    # biip / GS1 DL example content: SSCC, contained GTIN, count, lot.
    r = parse("]C100106141412345678908" + "0200614141123452" + "3725" + GS + "10ABC123")
    assert r.ok, r.errors
    assert r.kind == "sscc" and r.sscc == "106141412345678908"
    assert (r.gtin, r.count, r.lot) == ("00614141123452", 25, "ABC123")


def test_sscc_alone() -> None:
    r = parse("]C100106141412345678908")
    assert r.ok and r.kind == "sscc" and r.gtin is None


def test_variable_count_is_quantity() -> None:
    r = parse("]C10109506000134352" + "3012" + GS + "10L1")
    assert r.ok and r.quantity == 12 and r.count is None


@pytest.mark.parametrize(
    ("uri", "gtin", "lot", "serial", "expiry"),
    [
        # GS1 Digital Link standard examples
        (
            "https://id.gs1.org/01/09506000134352/10/ABC/21/12345?17=201225",
            "09506000134352",
            "ABC",
            "12345",
            date(2020, 12, 25),
        ),
        ("https://id.gs1.org/01/00614141123452/10/ABC123", "00614141123452", "ABC123", None, None),
        # custom domain + path prefix, GTIN-12 padded, unknown query parameters ignored
        ("https://example.com/foo/01/614141123452?foo=bar", "00614141123452", None, None, None),
    ],
)
def test_digital_link_examples(
    uri: str, gtin: str, lot: str | None, serial: str | None, expiry: date | None
) -> None:
    for prefix in ("", "]Q1", "]d1", "]Q3"):
        r = parse(prefix + uri)
        assert r.ok, r.errors
        assert r.kind == "digital_link"
        assert (r.gtin, r.lot, r.serial, r.expiry) == (gtin, lot, serial, expiry)
        assert r.symbology == (prefix or None)


def test_digital_link_sscc_with_query_elements() -> None:
    r = parse("]Q1https://id.gs1.org/00/106141412345678908?02=00614141123452&37=25&10=ABC123")
    assert r.ok and r.kind == "digital_link"
    assert (r.sscc, r.gtin, r.count, r.lot) == (
        "106141412345678908",
        "00614141123452",
        25,
        "ABC123",
    )


def test_digital_link_percent_encoded_value() -> None:
    r = parse("https://id.gs1.org/01/09506000134352/21/A%2FB%25")
    assert r.ok and r.serial == "A/B%"


@pytest.mark.parametrize(
    ("text", "gtin"),
    [
        ("]E05901234123457", "05901234123457"),  # EAN-13
        ("]E0036000291452", "00036000291452"),  # UPC-A sent as 12 digits
        ("]E00036000291452", "00036000291452"),  # UPC-A sent as 13 digits
        ("]E496385074", "00000096385074"),  # EAN-8
        ("]E004252614", "00042100005264"),  # UPC-E (biip docs) expanded
        ("]I115012345678907", "15012345678907"),  # ITF-14
        ("]E3590123412345712", "05901234123457"),  # EAN-13 + 2-digit add-on
        ("5901234123457", "05901234123457"),
        ("96385074", "00000096385074"),
        ("036000291452", "00036000291452"),
        ("15012345678907", "15012345678907"),
        ("]C10109506000134352", "09506000134352"),  # a lone (01)
    ],
)
def test_gtins_are_padded_to_14(text: str, gtin: str) -> None:
    r = parse(text)
    assert r.ok, r.errors
    assert (r.kind, r.gtin) == ("gtin", gtin)
    assert r.ais == (("01", gtin),)


def test_hri_form_without_aim() -> None:
    r = parse("(01)09506000134352(17)201225(10)ABC123")
    assert r.ok and (r.gtin, r.lot, r.expiry) == ("09506000134352", "ABC123", date(2020, 12, 25))


def test_surrounding_whitespace_and_leading_fnc1() -> None:
    r = parse("]C1" + GS + "0109506000134352" + GS + "\r\n")
    assert r.ok and r.kind == "gtin" and r.input.endswith("\r\n")


# --- routing ------------------------------------------------------------------------------


def test_c0_plain_code128_is_not_read_as_gs1() -> None:
    r = parse("]C00109506000134352172012251" + "0ABC123")
    assert r.kind == "unknown" and r.gtin is None and r.ais == ()
    assert r.error_codes() == ("not_gs1",)


def test_c0_plain_text_is_unparseable() -> None:
    r = parse("]C0HELLO")
    assert r.kind == "unknown" and r.error_codes() == ("unparseable",)


def test_d1_element_strings_are_not_gs1() -> None:
    assert parse("]d10109506000134352").error_codes() == ("not_gs1",)


def test_short_itf_is_not_a_gtin() -> None:
    assert parse("]I1123456").error_codes() == ("unparseable",)
    loc = BarcodePattern("location", r"[0-9]{6}", "itf-loc")
    assert parse("]I1123456", loc).kind == "location"


def test_url_without_primary_key_is_not_digital_link() -> None:
    r = parse("]Q1https://example.com/about")
    assert r.kind == "unknown" and r.error_codes() == ("unparseable",)


def test_invalid_aim_prefix_is_data() -> None:
    r = parse("]!0109506000134352")
    assert r.symbology is None and r.kind == "unknown"


# --- patterns -------------------------------------------------------------------------------

LOC = BarcodePattern("location", r"LOC-(?P<value>[A-Z0-9-]+)", "loc")
CMD = BarcodePattern("command", r"CMD:[A-Z]+")
ANY = BarcodePattern("command", r".*", "anything")


def test_pattern_location_with_value_group() -> None:
    r = parse("]C0LOC-A-01-2", LOC, CMD)
    assert (r.kind, r.value, r.pattern, r.ok) == ("location", "A-01-2", "loc", True)


def test_pattern_command_without_group_uses_whole_text() -> None:
    r = parse("CMD:UNDO", LOC, CMD)
    assert (r.kind, r.value, r.pattern) == ("command", "CMD:UNDO", "CMD:[A-Z]+")


def test_patterns_never_override_valid_gs1() -> None:
    for text in ("]C10109506000134352", "0109506000134352", "]E05901234123457", "96385074"):
        assert parse(text, ANY).kind == "gtin"
    assert parse("https://id.gs1.org/01/09506000134352", ANY).kind == "digital_link"


def test_patterns_apply_to_non_gs1_data_under_gs1_symbology() -> None:
    assert parse("]C1LOC-B-7", LOC).kind == "location"


def test_patterns_win_over_broken_gs1_without_aim() -> None:
    # "10XYZ" would be a lot without GTIN (pairing error); a configured pattern takes it.
    lot_like = BarcodePattern("command", r"10[A-Z]+", "ten")
    assert parse("10XYZ", lot_like).kind == "command"
    assert parse("10XYZ").error_codes() == ("pairing",)


def test_gs1_data_with_errors_under_gs1_symbology_ignores_patterns() -> None:
    r = parse("]C10109506000134353", ANY)
    assert r.kind == "gtin" and r.error_codes() == ("check_digit",)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\r\n", "]C1", "]Q1  ", GS])
def test_empty(text: str) -> None:
    r = parse(text)
    assert r.error_codes() == ("empty",) and r.kind == "unknown"


def test_check_digit_gtin_in_message() -> None:
    r = parse("]C10109506000134353" + "10ABC")
    assert r.errors == ("check_digit: GTIN 09506000134353 check digit should be 2",)
    assert r.gtin == "09506000134353" and not r.ok


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("]E05901234123458", "GTIN"),
        ("]E496385075", "GTIN"),
        ("]I115012345678908", "GTIN"),
        ("]E004252615", "UPC-E"),
        ("5901234123458", "GTIN"),
        ("]C100106141412345678909", "SSCC"),
        ("]C100106141412345678908" + "0200614141123453" + "3725", "GTIN"),
        ("]C10109506000134352" + "4140614141000419", "GLN"),
        ("https://id.gs1.org/01/09506000134353", "GTIN"),
        ("https://id.gs1.org/00/106141412345678909", "SSCC"),
    ],
)
def test_check_digit_everywhere(text: str, label: str) -> None:
    r = parse(text)
    assert "check_digit" in r.error_codes(), r.errors
    assert any(e.startswith(f"check_digit: {label} ") for e in r.errors)


def test_valid_gln_passes() -> None:
    assert parse("]C10109506000134352" + "4140614141000418").ok


@pytest.mark.parametrize(
    "text",
    [
        "]C10109506000134352" + "17201325",  # month 13
        "]C10109506000134352" + "17250230",  # 30 February
        "]C10109506000134352" + "17250229",  # 29 February in a common year
        "]C10109506000134352" + "17250001",  # month 00
        "]C10109506000134352" + "15251132",  # day 32
        "]C10109506000134352" + "7003250601" + "2460",  # expiry time 24:60
        "https://id.gs1.org/01/614141123452?15=000000",  # biip's all-zero date example
    ],
)
def test_invalid_date(text: str) -> None:
    r = parse(text)
    assert "invalid_date" in r.error_codes(), r.errors
    assert r.expiry is None and r.best_before is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("250200", date(2025, 2, 28)),
        ("240200", date(2024, 2, 29)),  # leap year
        ("000200", date(2000, 2, 29)),  # 2000 is a leap year
        ("251200", date(2025, 12, 31)),
        ("250400", date(2025, 4, 30)),
        ("240229", date(2024, 2, 29)),
    ],
)
def test_day_zero_is_last_day_of_month(value: str, expected: date) -> None:
    r = parse("]C10109506000134352" + "17" + value)
    assert r.ok, r.errors
    assert r.expiry == expected


def test_day_zero_not_allowed_where_spec_says_yymmdd() -> None:
    assert "invalid_date" in parse("]C10109506000134352" + "7006250600").error_codes()


@pytest.mark.parametrize(
    ("today", "yy", "year"),
    [
        (date(2025, 6, 1), "75", 2075),  # 50 ahead: current century
        (date(2025, 6, 1), "76", 1976),  # 51 ahead: previous century
        (date(2025, 6, 1), "99", 1999),
        (date(2025, 6, 1), "00", 2000),
        (date(2080, 1, 1), "30", 2130),  # 50 behind: next century
        (date(2080, 1, 1), "31", 2031),  # 49 behind: current century
        (date(1999, 1, 1), "05", 2005),
    ],
)
def test_century_window_relative_to_today(today: date, yy: str, year: int) -> None:
    r = parse("]C10109506000134352" + "17" + yy + "0101", today=today)
    assert r.expiry == date(year, 1, 1)


@pytest.mark.parametrize(
    "text",
    [
        "]C10109506000134352" + "9A",  # not an AI
        "]C1" + "01095060001343",  # (01) too short
        "]C1" + "01ABCDEFGHIJKLMN",  # (01) not numeric
        "]C10109506000134352" + "10ABC DEF",  # space is not in CSET 82
        "]C10109506000134352" + "10" + "A" * 21 + "X",  # lot longer than 20
        "]C10109506000134352" + "37ABC",  # count not numeric
        "]C1" + "0109506000134352" + "23",  # 23 is not an AI
        "https://id.gs1.org/01/0950600013435X",
        "]C1" + "01٠٩٥٠٦٠٠٠١٣٤٣٥٢",  # non-ASCII digits
    ],
)
def test_invalid_ai(text: str) -> None:
    r = parse(text)
    assert "invalid_ai" in r.error_codes(), r.errors
    assert not r.ok


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("]C121SER1", "(21) requires (01)"),
        ("]C110LOT1", "(10) requires (01)"),
        ("]C117251231", "(17) requires (01)"),
        ("]C115251231", "(15) requires (01)"),
        ("]C13725", "(37) requires (00) or (02)"),
        ("]C100106141412345678908" + "0200614141123452", "(02) requires (37)"),
        ("]C10109506000134352" + "0200614141123452" + "3710", "(01) and (02)"),
        ("]C10109506000134352" + "3710", "(01) and (37)"),
        ("]C10109506000134352" + "10A" + GS + "10B", "(10) occurs twice"),
        ("]C13005", "(30) requires (01) or (02)"),
        ("https://id.gs1.org/00/106141412345678908?21=X", "(21) requires (01)"),
    ],
)
def test_pairing(text: str, needle: str) -> None:
    r = parse(text)
    assert "pairing" in r.error_codes(), r.errors
    assert any(needle in e for e in r.errors), r.errors


def test_pairing_allows_lot_with_content_gtin() -> None:
    r = parse("]C10200614141123452" + "3725" + GS + "10ABC" + GS + "17260101")
    assert r.ok, r.errors


def test_pairing_ok_for_same_value_twice() -> None:
    assert parse("]C10109506000134352" + "10A" + GS + "10A").ok


@pytest.mark.parametrize(
    "uri",
    [
        "https://id.gs1.org/01/09506000134352/21/X/10/Y",  # qualifier order
        "https://id.gs1.org/01/09506000134352/15/250101",  # not a qualifier
        "https://id.gs1.org/00/106141412345678908/10/ABC123",  # SSCC takes no qualifier
        "https://example.com/foo/01/614141123452/123",  # odd path
        "https://id.gs1.org/01//10/X",  # empty value
        "https://id.gs1.org/01/614141123452/lot/ABC1/ser/12345?exp=180426",  # DL 1.0 names
    ],
)
def test_malformed_digital_link(uri: str) -> None:
    r = parse("]Q1" + uri)
    assert r.kind == "digital_link"
    assert r.error_codes() == ("digital_link",), r.errors


# --- warnings -------------------------------------------------------------------------------


def test_missing_separator_swallowed_expiry_and_lot() -> None:
    # (01)(10)ABC, GS lost, (17)211231(10)XYZ: the lot swallows the rest.
    r = parse("]C10109506000134352" + "10ABC1721123110XYZ")
    assert r.ok and r.lot == "ABC1721123110XYZ"
    assert r.warnings and r.warnings[0].startswith("missing_separator:")
    assert "(17)211231(10)XYZ" in r.warnings[0]


def test_missing_separator_swallowed_gtin_in_serial() -> None:
    r = parse("]C121SER" + "0109506000134352")  # 01 after 21 without GS
    assert any(w.startswith("missing_separator") for w in r.warnings)


def test_missing_separator_found_at_the_shortest_possible_length() -> None:
    # the swallowed (17)251231 ends the serial exactly: 8 characters left at its start
    r = parse("]C10109506000134352" + "21SER17251231")
    assert any("(17)251231" in w for w in r.warnings), r.warnings
    r = parse("]C10109506000134352" + "21SER1725123")  # one short: not an element
    assert r.warnings == (), r.warnings


def test_missing_separator_value_at_max_length() -> None:
    r = parse("]C10109506000134352" + "10" + "A" * 20 + "17251231")
    assert r.ok and r.lot == "A" * 20 and r.expiry == date(2025, 12, 31)
    assert [w.split(":")[0] for w in r.warnings] == ["missing_separator"]


@pytest.mark.parametrize("lot", ["ABC123", "1234", "LOT-17", "X1725", "A17251399"])
def test_no_missing_separator_warning_for_ordinary_lots(lot: str) -> None:
    r = parse("]C10109506000134352" + "10" + lot)
    assert r.ok and r.warnings == (), r.warnings


def test_digital_link_values_are_not_suspected() -> None:
    r = parse("https://id.gs1.org/01/09506000134352/10/ABC1721123110XYZ")
    assert r.ok and r.warnings == ()


# --- the result object ----------------------------------------------------------------------


def test_to_json_shape() -> None:
    r = parse("]C10109506000134352172012251" + "0ABC123")
    j = r.to_json()
    assert set(j) == {
        "input", "symbology", "kind", "gtin", "sscc", "serial", "lot", "expiry",
        "best_before", "count", "ais", "errors", "warnings", "value", "pattern",
    }  # fmt: skip
    assert j["expiry"] == "2020-12-25" and j["ais"] == {
        "01": "09506000134352",
        "17": "201225",
        "10": "ABC123",
    }
    assert j["errors"] == [] and j["symbology"] == "]C1"


def test_error_codes_and_hashable() -> None:
    r = parse("]C121X")
    assert r.error_codes() == ("pairing",)
    assert hash(r) == hash(parse("]C121X"))


def test_bad_pattern_regex_raises_value_error() -> None:
    with pytest.raises(ValueError, match="broken"):
        interpret("x", [BarcodePattern("command", "(", "broken")])
