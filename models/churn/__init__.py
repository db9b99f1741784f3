"""The churn model (settings, design, calibration, training, the trained model) and the baselines
it is measured against."""

import os

# OpenMP threads that spin while waiting turn LightGBM 4-5x slower whenever another process holds
# a core (100 rounds on 300,000 rows: 48-53 s spinning, 8-12 s sleeping, on 2 busy cores);
# sleeping costs nothing on an idle machine. Set before the OpenMP runtime loads (any module of
# this package imports LightGBM after this); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
