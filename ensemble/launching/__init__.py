"""`ensemble launch`: the coordinator (coordinator.py) plans or resumes a run and submits one
Ray task per unfinished split (tasks.py); the drive loop (drive.py) folds the workers'
progress, posted to a board actor (board.py), and their results into the manifest, of which
it is the only writer. May import ensemble's core, workers/ and manifests/.
"""
