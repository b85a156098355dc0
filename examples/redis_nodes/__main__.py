"""``python -m examples.redis_nodes``: the Redis bridge demo (see app.py)."""

import sys

from .app import main

sys.exit(main())
