"""How good a split's generator is, class by class: used while training (guard.py keeps the
best generator and flags failing classes) and after it (`ensemble evaluate`).

    yardstick.py   the split's own real-data classifier, trained once and cached
    measures.py    accuracy, diversity, MS-SSIM, FID, KID and distance to the training images
    verdicts.py    what a class is called (ok, collapsed, low-accuracy, memorised): torch-free
    evaluation.py  every measure of a class, and the verdict on it, for `ensemble evaluate`
    imagenet.py    the paper's 1000-way accuracy with a torchvision classifier the user has
    guard.py       the quality guard run at each checkpoint
"""
