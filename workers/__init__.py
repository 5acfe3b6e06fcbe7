"""What runs inside one split's job, and the model code the coordinator's commands reuse:
the AC-GAN (config, model, losses, step, augment), its training loop (train.py), checkpoints,
datasets/ (built-in, image folders, torchvision arrays), quality/ (the guard and evaluation's
measures), images.py (generating and encoding pictures) and TensorBoard curves.

Nothing here imports Ray or ensemble/: the training function is a plain function, testable alone.
"""
