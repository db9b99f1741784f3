"""Buy-till-you-die models: BG/NBD and Pareto/NBD purchases, Gamma-Gamma spend (PyMC)."""
