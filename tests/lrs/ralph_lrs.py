"""Ralph's LRS API (ralph.api:app) for the analytics tests, on loopback.

Ralph's file backend (the one that needs no database server) writes with
the operation type CREATE, which refuses a file that already exists: it
takes one POST and answers 500 to every later one. Here it appends
instead; validation, authentication, duplicate-id checks and storage are
Ralph's own.

    python ralph_lrs.py HOST PORT
"""

import sys

import uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.data.fs import FSDataBackend

FSDataBackend.default_operation_type = BaseOperationType.APPEND

if __name__ == "__main__":
    uvicorn.run("ralph.api:app", host=sys.argv[1], port=int(sys.argv[2]), log_level="info")
