"""The churn classifier and the baselines it is measured against."""
