"""
The live spectrum viewer.

:mod:`.display` holds the sinks (``spectrum_display``,
``multi_spectrum_display``) and :mod:`.traces` / :mod:`.markers` what they
compute; neither imports Qt.  :mod:`.loop` puts Twisted on a Qt event loop,
and :mod:`.viewer` / :mod:`.controls` are the window, imported only when one
is opened (they need the ``gui`` extra: pyqtgraph, PySide6, qasync).
"""
