"""Failpoints: named places where a test can make the driver die or stall on purpose.

``VLPREP_FAILPOINT=store.files_moved:2:kill`` SIGKILLs this process the 2nd time the run
passes ``store.files_moved``; ``...:sleep=5`` stalls there instead, so a test can kill the
run from outside at a known point; ``...:kill-once=/tmp/marker`` kills only the first process
to get there (it leaves the marker file), e.g. one Ray worker. Names with a colon, such as
``video:ID`` (checked before a stage processes video ID), match with count 0 = every time.
Several failpoints are separated by commas. Unset (always, outside tests), a failpoint costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

ENV = "VLPREP_FAILPOINT"
_hits: Counter = Counter()


def failpoint(name: str, detail: str = "") -> None:
    """`detail` (e.g. the file being written) goes into a kill-once marker, for the test."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for one in spec.split(","):
        if not one.startswith(name + ":"):
            continue
        count, _, action = one[len(name) + 1:].partition(":")
        _hits[name] += 1
        if int(count or 1) not in (0, _hits[name]):
            continue
        if action.startswith("sleep="):
            time.sleep(float(action.split("=", 1)[1]))
        elif action.startswith("kill-once="):
            marker = action.split("=", 1)[1]
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, detail.encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            os.kill(os.getpid(), signal.SIGKILL)
