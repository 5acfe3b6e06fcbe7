"""What runs inside one split's job: the AC-GAN, its training loop, datasets, checkpoints.

Nothing here imports Ray: the training function is a plain function, testable alone.
"""
