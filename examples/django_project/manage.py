#!/usr/bin/env python3
"""Django's manage.py for the example; run from anywhere."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
