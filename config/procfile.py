"""`make run`: start the Procfile's processes (web, worker, beat) with honcho; Ctrl-C stops them together.

honcho sends SIGTERM and kills what is still running 5 seconds later. A Celery worker's warm shutdown (finish
the running task, hand unacknowledged messages back to the broker) can take longer than that on a busy
machine, so the processes get STOP_GRACE_SECONDS instead.

    python -m config.procfile [honcho start arguments, e.g. web worker]
"""

from __future__ import annotations

import sys

import honcho.manager
from honcho.command import main

STOP_GRACE_SECONDS = 30

if __name__ == "__main__":
    honcho.manager.KILL_WAIT = STOP_GRACE_SECONDS
    main(["start", "-f", "Procfile", *sys.argv[1:]])
