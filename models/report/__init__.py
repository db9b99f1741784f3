"""The report for the people who decide: headline KPIs, what to do and whom to contact, the
change since the previous published table, a glossary, and the model evaluation in an appendix.
One self-contained HTML page (inline styles and SVG charts, no script, nothing fetched)."""
