"""Names of feature-table columns that the models rely on and the features stage writes: a
module with no imports, so that both (and a registered model shipping ``models``) can use it."""

COVARIATE_PREFIX = "cov_"  # a customer covariate: cov_<column> or cov_<column>_<level>
MARGIN = "total_margin"  # net margin to date: the features carry it where the log has margins

TARGET = "churned"
CUTOFF = "cutoff"
IDENTIFIERS: tuple[str, ...] = ("customer_id", CUTOFF)
# Outcomes measured after the cutoff: never features of any model learnt on the tables.
LABEL_COLUMNS: tuple[str, ...] = (
    TARGET,
    "next_purchases",
    "next_spend",
    "holdout_purchases",
    "holdout_spend",
)
