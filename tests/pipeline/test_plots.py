"""`cvm plots` draws DVC's plot specs itself: lines that DVC tells apart by dash alone get a
colour each (the DVC run itself is in test_dvc_results.py)."""

from __future__ import annotations

from pipeline.plots import distinguishable, page

ROC = {  # as `dvc plots diff HEAD --json` renders a plot of three files
    "mark": {"type": "line"},
    "data": {
        "values": [
            {"rev": rev, "filename": name, "fpr": x, "tpr": x**0.5}
            for rev in ("HEAD", "workspace")
            for name in ("churn_model.csv", "clv_p_no_purchase.csv", "recency_days.csv")
            for x in (0.0, 0.5, 1.0)
        ]
    },
    "encoding": {
        "x": {"field": "fpr", "type": "quantitative", "title": "false positive rate"},
        "y": {"field": "tpr", "type": "quantitative", "title": "true positive rate"},
        "color": {"field": "rev", "scale": {"domain": ["HEAD", "workspace"]}},
        "strokeDash": {
            "field": "filename",
            "scale": {
                "domain": ["churn_model.csv", "clv_p_no_purchase.csv", "recency_days.csv"],
                "range": [[1, 0], [8, 8], [8, 4]],
            },
        },
    },
}


def test_each_file_gets_a_colour_and_each_revision_a_dash():
    encoding = distinguishable(ROC)["encoding"]
    assert encoding["color"]["field"] == "filename"
    assert encoding["color"]["scale"]["domain"] == ROC["encoding"]["strokeDash"]["scale"]["domain"]
    assert encoding["strokeDash"]["field"] == "rev"
    assert encoding["strokeDash"]["scale"]["range"] == [[1, 0], [8, 4]]
    assert encoding["x"] == ROC["encoding"]["x"]  # the rest as DVC drew it


def test_a_plot_whose_lines_differ_by_colour_is_left_as_it_is():
    layered = {"encoding": {"color": {"field": "rev"}, "strokeDash": {"field": "field"}}}
    assert distinguishable(layered) is layered


def test_the_page_is_svg_without_a_script():
    html = page({"churn_roc": [{"content": ROC | {"title": "Churn ROC"}}]}, ["HEAD"])
    assert html.count("<svg") == 1 and "<script" not in html and "Churn ROC" in html


def test_the_layers_of_a_smoothed_plot_are_recoloured_too():
    """DVC's smooth template colours each layer by revision: every layer follows the files."""
    smooth = ROC | {"layer": [{"mark": "line", "encoding": {"color": {"field": "rev"}}}]}
    layer = distinguishable(smooth)["layer"][0]
    assert layer["encoding"]["color"] == {"field": "filename"}
