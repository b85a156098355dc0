"""``python -m examples.flask_app``: serve the orders app on http://127.0.0.1:5000."""

import sys

from .app import main

sys.exit(main())
