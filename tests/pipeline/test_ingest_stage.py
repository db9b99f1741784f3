"""ingest: each row ends in the clean log or in quarantine with a reason; bad files stop."""

from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from tests.conftest import CSV_MAPPING

HEADER = "cust,when,value,qty\n"
GOOD = "c1,2024-01-05,10.50,1\n"


def run_ingest(make_params, tmp_path: Path, text: str | bytes, *overrides: str) -> int:
    log = tmp_path / "log.csv"
    log.write_bytes(text if isinstance(text, bytes) else text.encode())
    params = make_params(f"data.path={log}", *CSV_MAPPING, *overrides)
    return main(["stage", "ingest", "--params", str(params)])


def outputs(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    import json

    clean = pd.read_parquet(tmp_path / "data/interim/transactions.parquet")
    quarantine = pd.read_parquet(tmp_path / "data/interim/quarantine.parquet")
    report = json.loads((tmp_path / "data/interim/ingest_report.json").read_text())
    return clean, quarantine, report


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (",2024-01-06,3.00,1", "missing_customer_id"),
        ("   ,2024-01-06,3.00,1", "missing_customer_id"),
        ("c2,,3.00,1", "missing_timestamp"),
        ("c2,2024-13-45,3.00,1", "unparseable_timestamp"),
        ("c2,06/01/2024,3.00,1", "unparseable_timestamp"),
        ("c2,2024-01-06,,1", "missing_amount"),
        ("c2,2024-01-06,12,50$,1", "malformed_line"),  # one field too many
        ("c2,2024-01-06,twelve,1", "non_numeric_amount"),
        ("c2,2024-01-06,inf,1", "non_finite_amount"),
        ("c2,2024-01-06,NaN,1", "non_finite_amount"),
        ("c2,2024-01-06,1e308,1", "amount_out_of_range"),  # beyond what the features can sum
        ("c2,2024-01-06,-1e15,1", "amount_out_of_range"),
        ("c2,2024-01-06,3.00,two", "non_numeric_quantity"),
        ("c2,2023-12-31,3.00,1", "timestamp_before_start"),
        ("c2,2025-01-01,3.00,1", "timestamp_after_end"),
        ("c2,2024-01-06,-3.00,1", "return"),
        (GOOD.strip(), "duplicate"),
        ("c2", "missing_timestamp"),  # a short line: absent fields are missing values
    ],
)
def test_a_bad_row_is_quarantined_with_its_line_and_reason(make_params, tmp_path, line, reason):
    code = run_ingest(make_params, tmp_path, HEADER + GOOD + line + "\n" + "c3,2024-02-01,5,1\n")
    assert code == 0
    clean, quarantine, report = outputs(tmp_path)
    assert report["rows_read"] == 3 == report["rows_kept"] + report["rows_quarantined"]
    assert report["quarantined_by_reason"] == {reason: 1}
    assert quarantine.to_dict("records")[0]["source_row"] == 3  # header is line 1
    assert quarantine.reason.tolist() == [reason]
    assert quarantine.raw_cust.iloc[0] in (line.split(",")[0].strip() or None, line.split(",")[0])
    assert sorted(clean.source_row) == [2, 4]


def test_a_malformed_line_is_quarantined_with_what_is_wrong(make_params, tmp_path):
    code = run_ingest(
        make_params, tmp_path, HEADER + GOOD + "c2,2024-01-06,12,50,9\n" + "c3,2024-02-01,5,1\n"
    )
    assert code == 0
    clean, quarantine, report = outputs(tmp_path)
    assert quarantine[["source_row", "reason", "detail"]].to_dict("records") == [
        {"source_row": 3, "reason": "malformed_line", "detail": "5 fields; expected at most 4"}
    ]
    assert quarantine.raw_cust.tolist() == ["c2"]  # the fields as split, for a look
    assert report["quarantined_by_reason"] == {"malformed_line": 1}


def test_every_row_is_accounted_for_in_a_mixed_file(make_params, tmp_path):
    rows = [
        GOOD,
        ",2024-01-06,3,1\n",
        "c2,bad,3,1\n",
        "c2,2024-01-06,x,1\n",
        GOOD,
        "c4,2024-03-01,0,1\n",
    ]
    assert run_ingest(make_params, tmp_path, HEADER + "".join(rows)) == 0
    clean, quarantine, report = outputs(tmp_path)
    assert report["rows_read"] == len(rows) == len(clean) + len(quarantine)
    assert sorted(clean.source_row.tolist() + quarantine.source_row.tolist()) == list(range(2, 8))
    assert clean.amount.tolist() == [10.5, 0.0]  # a zero amount is kept by default
    assert report["quarantined_by_reason"] == {
        "duplicate": 1,
        "missing_customer_id": 1,
        "non_numeric_amount": 1,
        "unparseable_timestamp": 1,
    }


def test_returns_can_be_netted_and_zeros_quarantined(make_params, tmp_path):
    text = HEADER + GOOD + "c1,2024-01-06,-4,1\n" + "c1,2024-01-07,0,1\n"
    code = run_ingest(
        make_params, tmp_path, text, "data.rules.returns=net", "data.rules.zero_amounts=quarantine"
    )
    assert code == 0
    clean, quarantine, report = outputs(tmp_path)
    assert clean.amount.tolist() == [10.5, -4.0]
    assert quarantine.reason.tolist() == ["zero_amount"]


def test_identical_lines_are_kept_when_duplicates_are_purchases(make_params, tmp_path):
    assert (
        run_ingest(make_params, tmp_path, HEADER + GOOD + GOOD, "data.rules.duplicates=keep") == 0
    )
    clean, quarantine, _ = outputs(tmp_path)
    assert len(clean) == 2 and quarantine.empty


def test_parquet_logs_with_typed_columns(make_params, tmp_path):
    log = tmp_path / "log.parquet"
    pd.DataFrame(
        {
            "cust": ["c1", "c2", None],
            "when": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-02-02"]),
            "value": [10.5, float("inf"), 3.0],
        }
    ).to_parquet(log)
    params = make_params(
        f"data.path={log}", *CSV_MAPPING, "data.format=parquet", "data.mapping.quantity=null"
    )
    assert main(["stage", "ingest", "--params", str(params)]) == 0
    clean, quarantine, report = outputs(tmp_path)
    assert clean.customer_id.tolist() == ["c1"]
    assert dict(zip(quarantine.source_row, quarantine.reason, strict=True)) == {
        2: "non_finite_amount",
        3: "missing_customer_id",
    }


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (HEADER + GOOD, ("data.mapping.amount=price",), "missing column(s) price"),
        (HEADER + GOOD, ("data.format=xlsx",), "data.format is 'xlsx'; expected one of"),
        ("", (), "the file is empty"),
        (HEADER, (), "no data rows"),
        (b"cust,when,value,qty\nc1,2024-01-05,\xff\xfe,1\n", (), "1 rows are not UTF-8"),
        (HEADER + GOOD, ("data.rules.returns=refund",), "data.rules.returns is 'refund'"),
        (
            HEADER + GOOD,
            ("data.rules.start=01/01/2024",),
            "data.rules.start is '01/01/2024'; expected a date YYYY-MM-DD or null",
        ),
        (
            HEADER + GOOD,
            ("+data.mapping.store=shop",),
            "data.mapping.store is not a config key; data.mapping has the keys customer_id",
        ),
    ],
)
def test_bad_files_and_config_stop_with_a_clear_message(
    make_params, tmp_path, capsys, text, overrides, message
):
    assert run_ingest(make_params, tmp_path, text, *overrides) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvm: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "data/interim").exists()


PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


def test_a_message_never_quotes_the_first_line_of_a_file_that_is_no_log(
    make_params, tmp_path, capsys
):
    """A data config crafted so that one mapped column is the whole first line of a system
    file (read with blanks as separators) would have the message quote that line."""
    first = PASSWD.splitlines()[0]
    overrides = (
        "data.format=whitespace",
        f"data.mapping.customer_id='{first}'",
        "data.mapping.quantity=null",
    )
    assert run_ingest(make_params, tmp_path, PASSWD, *overrides) == 2
    err = capsys.readouterr().err
    assert "missing column(s) when, value" in err and "1 more not shown" in err, err
    assert "root:x" not in err and "/bin/bash" not in err


def test_a_log_readable_only_by_privilege_is_refused(make_params, tmp_path, capsys):
    """Its permissions do not let this user read it (root still could)."""
    log = tmp_path / "log.csv"
    log.write_text(HEADER + GOOD)
    log.chmod(0o200)
    params = make_params(f"data.path={log}", *CSV_MAPPING)
    assert main(["stage", "ingest", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert "do not let this user" in err and "--w-------" in err, err
    assert not (tmp_path / "data/interim").exists()


def test_the_copies_of_a_private_log_are_as_private(make_params, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(HEADER + GOOD + "c2,2024-01-06,twelve,1\n")
    log.chmod(0o640)
    assert run_ingest(make_params, tmp_path, log.read_text()) == 0  # rewrites it: mode kept
    for name in ("transactions.parquet", "quarantine.parquet"):
        mode = (tmp_path / "data/interim" / name).stat().st_mode & 0o777
        assert mode & 0o007 == 0 and mode & 0o040, oct(mode)  # group may read, others not


def test_missing_file_names_the_path(make_params, tmp_path, capsys):
    params = make_params(f"data.path={tmp_path}/nowhere.csv", *CSV_MAPPING)
    assert main(["stage", "ingest", "--params", str(params)]) == 2
    assert "nowhere.csv: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("rule", ["warn", "cap", "quarantine"])
def test_an_absurd_amount_is_found_and_handled_as_the_rule_says(make_params, tmp_path, rule):
    rows = [f"c{i % 40},2024-0{1 + i % 9}-1{i % 10},{10 + i % 13}.25,1\n" for i in range(400)]
    rows[123] = "c7,2024-03-03,1000000000000,1\n"  # 1e12 on a repeat purchase
    assert (
        run_ingest(
            make_params, tmp_path, HEADER + "".join(rows), f"data.rules.extreme_amounts={rule}"
        )
        == 0
    )
    clean, quarantine, report = outputs(tmp_path)
    found = report["extreme_amounts"]
    assert found["rows"] == 1 and found["largest"] == 1e12 and found["rule"] == rule
    assert 22.25 * 100 <= found["limit"] <= 22.25 * 100 * 1.01  # 100 x the 99th percentile
    assert report["rows_read"] == report["rows_kept"] + report["rows_quarantined"] == 400
    if rule == "warn":
        assert clean.amount.max() == 1e12
    elif rule == "cap":
        assert clean.amount.max() == pytest.approx(found["limit"])
    else:
        assert clean.amount.max() < 100 and quarantine.reason.tolist() == ["extreme_amount"]


@pytest.mark.parametrize("kind", ["margin", "cost"])
def test_a_margin_or_a_cost_column_gives_each_line_its_margin(make_params, tmp_path, kind):
    """The margin column as given, or the amount less the cost column; a line without a number
    there is quarantined, naming the column it lacks."""
    text = (
        "cust,when,value,qty,extra\n"
        "c1,2024-01-05,10.50,1,4.00\n"
        "c2,2024-01-06,8.00,1,\n"
        "c3,2024-01-07,9.00,1,lots\n"
        "c4,2024-01-08,5.00,1,inf\n"
        "c5,2024-02-01,5.00,2,1e16\n"
    )
    assert run_ingest(make_params, tmp_path, text, f"data.mapping.{kind}=extra") == 0
    clean, quarantine, report = outputs(tmp_path)
    assert clean.margin.tolist() == [4.0 if kind == "margin" else 6.5]
    assert report["quarantined_by_reason"] == {
        f"missing_{kind}": 1,
        f"non_numeric_{kind}": 1,
        f"non_finite_{kind}": 1,
        f"{kind}_out_of_range": 1,
    }
