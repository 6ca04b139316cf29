"""Prefect flows that schedule and fan out the pipeline: nightly, backfill, train.

The flows only orchestrate `pipeline` and `models`; they hold no business logic. Importing this
package sets offline-safe Prefect defaults before Prefect itself is imported, because the
pipeline runs on machines without internet access:

- ``PREFECT_SERVER_ANALYTICS_ENABLED=false`` and ``DO_NOT_TRACK=1``: no telemetry (offline it
  only fails and fills the logs with errors every ten minutes);
- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90``: the 20 s default is missed on a busy
  two-core machine when no server is running and Prefect starts a temporary one.

Each is a default: a value already in the environment wins. Set them yourself on a Prefect server
you run (see the README).
"""

import os

from models import QUIET_LOADING

OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    **QUIET_LOADING,  # model loading: no progress bars in flow logs, no forked tokenizer threads
}

for _name, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_name, _value)
