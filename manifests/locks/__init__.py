"""One launch at a time per run: a POSIX file lock for a local run (launch_lock.py), a lease
with conditional writes on S3 (lease.py). holder.py is what both say about the launch that
holds a run, and the refusal a second launch gets.
"""
