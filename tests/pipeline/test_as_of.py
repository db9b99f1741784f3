"""A row dated after the run's as-of date is quarantined (``timestamp_after_as_of``), never taken
as the end of the data."""

from datetime import date

from tests.pipeline.test_ingest_stage import GOOD, HEADER, outputs, run_ingest

NO_END = ("data.rules.end=null", "data.calibration_end=2024-01-31", "data.holdout_end=null")


def test_a_row_in_the_future_is_quarantined_not_the_end_of_the_data(make_params, tmp_path):
    text = HEADER + GOOD + "c2,2099-01-01,3.00,1\n" + "c3,2024-02-01,5,1\n"
    assert run_ingest(make_params, tmp_path, text, *NO_END, "data.scoring_date=null") == 0
    clean, quarantine, report = outputs(tmp_path)
    assert report["as_of"] == date.today().isoformat()
    assert quarantine[["source_row", "reason"]].values.tolist() == [[3, "timestamp_after_as_of"]]
    assert clean.timestamp.max().date() == date(2024, 2, 1)


def test_the_scoring_date_is_the_as_of_date_when_set(make_params, tmp_path):
    text = HEADER + GOOD + "c2,2024-03-02,3.00,1\n" + "c3,2024-02-01,5,1\n"
    overrides = (*NO_END, "data.scoring_date=2024-03-01")
    assert run_ingest(make_params, tmp_path, text, *overrides) == 0
    _, quarantine, report = outputs(tmp_path)
    assert report["as_of"] == "2024-03-01"
    assert report["quarantined_by_reason"] == {"timestamp_after_as_of": 1}
    assert quarantine.raw_when.tolist() == ["2024-03-02"]
