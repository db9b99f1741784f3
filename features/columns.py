"""Names of feature-table columns that the models rely on, kept apart so that depending on them
does not mean depending on how the tables are built."""

COVARIATE_PREFIX = "cov_"  # a customer covariate: cov_<column> or cov_<column>_<level>
