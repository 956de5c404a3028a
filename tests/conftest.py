"""
Shared test set-up: Qt renders offscreen, and no test leaves the default
graph changed for the next.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
