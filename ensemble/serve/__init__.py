"""`ensemble serve`: samples over HTTP with Ray Serve.

    command.py  the command: checks, the application bound to its options, deploy, wait, stop
    rules.py    what every request obeys: limits, one-line JSON errors, label -> served model
    app.py      the deployments (the FastAPI ingress and the multiplexed generators)
    page.py     the gallery page at /

Only app.py imports Ray Serve and FastAPI; command.py imports it once its checks pass.
"""
