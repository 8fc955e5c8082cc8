"""Failpoints: named places where a test can make the driver die or stall on purpose.

``VLPREP_FAILPOINT=store.files_moved:2:kill`` SIGKILLs this process the 2nd time the run
passes ``store.files_moved``; ``...:sleep=5`` stalls there instead, so a test can kill the
run from outside at a known point. Unset (always, outside tests), a failpoint costs one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

ENV = "VLPREP_FAILPOINT"
_hits: Counter = Counter()


def failpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, rest = spec.partition(":")
    if target != name:
        return
    count, _, action = rest.partition(":")
    _hits[name] += 1
    if _hits[name] != int(count or 1):
        return
    if action.startswith("sleep="):
        time.sleep(float(action.split("=", 1)[1]))
    else:
        os.kill(os.getpid(), signal.SIGKILL)
