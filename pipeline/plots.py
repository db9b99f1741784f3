"""`cvm plots`: the DVC plots of one revision or several, as one static page that opens offline.

`dvc plots show` and `dvc plots diff` write a page that loads Vega from a CDN: blank without the
network. This takes the Vega-Lite specs DVC renders from `dvc.yaml`'s plots (its `--json`
output, data included), draws each to SVG with vl-convert in this process, and writes them into
one HTML file with no script and nothing to fetch. Where DVC tells the lines of a plot apart
only by their dash (a plot of several files: the churn scores, the customers of the P(alive)
paths), each file gets a colour of its own and the revisions the dashes.
"""

from __future__ import annotations

import html
import json
import subprocess
from pathlib import Path

from pipeline import io
from pipeline.errors import CvmError

DEFAULT_OUT = Path("dvc_plots/index.html")  # where DVC writes its page: ignored by git
DASHES = ([1, 0], [8, 4], [2, 2], [8, 4, 2, 4])  # solid, dashed, dotted, dash-dot


def plot_specs(revisions: list[str], root: Path) -> dict[str, list[dict]]:
    """Each plot's renders (DVC's JSON) for ``revisions`` (none: the workspace's plots)."""
    command = ["dvc", "plots", "diff", *revisions] if revisions else ["dvc", "plots", "show"]
    done = subprocess.run([*command, "--json"], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise CvmError(f"{' '.join(command)} failed: {done.stderr.strip()[-1000:]}")
    return json.loads(done.stdout)["data"]


def distinguishable(spec: dict) -> dict:
    """``spec`` coloured by file and dashed by revision where DVC colours the revisions and
    dashes the files (several lines of one revision would differ by dash alone). The layers of
    DVC's templates that colour by revision are recoloured too: they share the top scale."""
    encoding = spec.get("encoding", {})
    color, dash = encoding.get("color", {}), encoding.get("strokeDash", {})
    if color.get("field") != "rev" or dash.get("field") != "filename":
        return spec
    files, revisions = dash["scale"]["domain"], color["scale"]["domain"]
    recoloured = _by_file(spec)
    return recoloured | {
        "encoding": recoloured["encoding"]
        | {
            "color": {
                "field": "filename",
                "title": "line",
                "scale": {"domain": files, "scheme": "category10"},
            },
            "strokeDash": {
                "field": "rev",
                "title": "revision",
                "scale": {"domain": revisions, "range": list(DASHES[: len(revisions)])},
            },
        }
    }


def _by_file(node):
    """``node`` with every colour encoding of the revision made one of the file."""
    if isinstance(node, list):
        return [_by_file(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _by_file(value) for key, value in node.items()}
    color = out.get("encoding", {}).get("color") if isinstance(out.get("encoding"), dict) else None
    if isinstance(color, dict) and color.get("field") == "rev":
        out["encoding"] = out["encoding"] | {"color": color | {"field": "filename"}}
    return out


def page(renders: dict[str, list[dict]], revisions: list[str]) -> str:
    """One HTML page of every plot drawn as SVG, titled by the revisions drawn."""
    import vl_convert

    figures = []
    for name, found in renders.items():
        for render in found:
            svg = vl_convert.vegalite_to_svg(distinguishable(render["content"]))
            figures.append(f'<figure id="{html.escape(name)}">{svg}</figure>')
    drawn = {
        rev: None for found in renders.values() for r in found for rev in r.get("revisions", [])
    }
    shown = ", ".join(drawn) or ", ".join(revisions) or "the workspace"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>cvm plots: {html.escape(shown)}</title><style>"
        "body{font-family:sans-serif;margin:2em} figure{display:inline-block;margin:0 1em 1em 0}"
        f"</style></head><body><h1>Plots of {html.escape(shown)}</h1>{''.join(figures)}"
        "</body></html>\n"
    )


def run(revisions: list[str], out: Path = DEFAULT_OUT, root: Path = Path()) -> Path:
    """Write the page of ``revisions``' plots to ``out``; returns its path."""
    content = page(plot_specs(revisions, root), revisions)
    out.parent.mkdir(parents=True, exist_ok=True)
    io.write_atomic(out, lambda tmp: tmp.write_text(content))
    return out
