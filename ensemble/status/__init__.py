"""`ensemble status`: reading a run's manifest, evaluation and launch holder (read.py), the
table a terminal shows (table.py), and redrawing it until the launch ends (watch.py).
Imports neither torch nor Ray: `ensemble status` stays a fraction of a second.
"""
