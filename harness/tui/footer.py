"""The app's footer (chat, instance and diff screens): every key stays on screen at 80 columns.

Textual's footer is one row; in 80 columns it cut off the keys after the first seven (the logs,
the inspector and the refresh key). One row cannot hold them: the chat screen's ten keys need about
85 columns even compact with one-word descriptions. Below the app's narrow breakpoint this footer
lays its keys out in two rows of a grid instead, compact (no padding around the key), the command
palette key in the grid with the others; wider, it is Textual's footer as it was.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.widgets import Footer

ROWS_WHEN_NARROW = 2


class KeysFooter(Footer):
    """A footer of two rows when the app is narrow (the `-narrow` breakpoint class), one otherwise.

    The two-row layout is in styles.tcss (`.-narrow KeysFooter`): a widget's DEFAULT_CSS is scoped to
    the widget, so it cannot depend on the app's breakpoint class."""

    def compose(self) -> ComposeResult:
        keys = list(super().compose())
        # Footer.compose sets one grid column per key (one row); two rows need half as many.
        self.styles.grid_size_columns = max(1, math.ceil(len(keys) / ROWS_WHEN_NARROW))
        yield from keys
