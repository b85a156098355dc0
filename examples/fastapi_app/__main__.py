"""``python -m examples.fastapi_app [--port N]``: serve the orders app under uvicorn on http://127.0.0.1:8001."""

import sys

from .app import main

sys.exit(main())
