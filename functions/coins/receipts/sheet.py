"""The one page layout of every receipt and statement: a heading, labelled facts, tables
and notes, on A4, in English (left to right) or Arabic (right to left).

fpdf2 lays the text out and HarfBuzz (uharfbuzz) shapes it (Arabic letters joined,
lam-alef ligatures); fpdf2 applies the Unicode bidirectional algorithm to a line that
mixes scripts (an English note in an Arabic receipt, an id, an amount). In Arabic the columns
are mirrored too: labels on the right, the first column of a table on the right. Digits
are Western, as the app shows them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fpdf import FPDF

FONTS = Path(__file__).parent / "fonts"
MARGIN_MM = 18
LINE_MM = 6.5
INK, MUTED, RULE, BAND = (20, 24, 33), (96, 104, 118), (214, 218, 226), (243, 245, 249)
# What a cell is given of a text before it is fitted (a name from a token is unbounded,
# and fitting reshapes the text at each step).
CELL_CHARACTERS_MAX = 160
# Noto Sans and Noto Sans Arabic in one font (fonts/README.md): any line may mix them.
FONT = "GuildSans"
# The bidirectional controls (LRM, RLM, ALM, the embeddings, overrides and isolates):
# never drawn (Sheet._text).
CONTROLS = dict.fromkeys([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


@dataclass(frozen=True)
class Column:
    title: str
    width: float  # a share of the line
    numeric: bool = False  # aligned to the end of the cell where amounts line up


class Sheet:
    """A document being written, top to bottom; `pdf()` gives its bytes."""

    def __init__(self, language: str, *, title: str, footer: str) -> None:
        self.rtl = language == "ar"
        self._footer = footer
        pdf = _Pdf(self, format="A4", unit="mm")
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(True, margin=MARGIN_MM + 6)
        pdf.add_font(FONT, "", str(FONTS / f"{FONT}-Regular.ttf"))
        pdf.add_font(FONT, "B", str(FONTS / f"{FONT}-Bold.ttf"))
        pdf.set_text_shaping(use_shaping_engine=True, direction="rtl" if self.rtl else "ltr")
        pdf.set_title(title)
        pdf.set_author("GUILD Coins")
        pdf.set_creator("GUILD Coins")
        font = pdf.fonts[FONT.lower()]
        assert hasattr(font, "cmap"), "a TrueType font, with its character map"
        self._known = set(font.cmap)
        self._pdf = pdf
        pdf.add_page()

    @property
    def _width(self) -> float:
        return self._pdf.w - 2 * MARGIN_MM

    def _font(self, size: float, *, bold: bool = False, color: tuple[int, int, int] = INK) -> None:
        self._pdf.set_font(FONT, "B" if bold else "", size)
        self._pdf.set_text_color(*color)

    def _text(self, text: str) -> str:
        """What the font can draw: a character it lacks becomes "?", not a gap; and no
        bidirectional control. HarfBuzz draws a control as a space of no advance, which
        text extraction (poppler) reads as a space over the next character, breaking a
        copied or searched id in two; and an override in a name or note could turn the
        figures beside it around. The direction of each cell comes from its own text
        instead (`_direction`)."""
        text = text.translate(CONTROLS)
        return "".join(c if ord(c) in self._known or c == "\n" else "?" for c in text)

    def _direction(self, text: str) -> str:
        """A cell's base direction, as HTML's dir="auto": its first strong character's
        ("•••• DEFG" and "2026-11 · bob" left to right, "110.00 ر.ق" right to left), and
        the sheet's where it has none (figures alone)."""
        for c in text:
            kind = unicodedata.bidirectional(c)
            if kind == "L":
                return "ltr"
            if kind in ("R", "AL"):
                return "rtl"
        return "rtl" if self.rtl else "ltr"

    def _cell(self, x: float, width: float, text: str, *, end: bool = False, height: float = LINE_MM) -> None:
        """One line of text at `x` (from the start of the line, in the sheet's direction),
        fitted to `width`: cut with an ellipsis rather than spilling over its neighbour."""
        text = self._text(text[:CELL_CHARACTERS_MAX])
        self._pdf.set_text_shaping(use_shaping_engine=True, direction=self._direction(text))
        while text and self._pdf.get_string_width(text) > width - 1:
            text = text[:-2] + "…"
        left = MARGIN_MM + (self._width - x - width if self.rtl else x)
        self._pdf.set_x(left)
        align = ("L" if self.rtl else "R") if end else ("R" if self.rtl else "L")
        self._pdf.cell(width, height, text, align=align)

    def heading(self, title: str, subtitle: str) -> None:
        self._font(9, bold=True, color=MUTED)
        self._cell(0, self._width, "GUILD Coins")
        self._pdf.ln(LINE_MM)
        self._font(18, bold=True)
        self._cell(0, self._width, title, height=11)
        self._pdf.ln(11)
        self._font(10, color=MUTED)
        self._cell(0, self._width, subtitle)
        self._pdf.ln(LINE_MM + 3)
        self._rule()

    def section(self, title: str) -> None:
        self._room(3 * LINE_MM)
        self._pdf.ln(3)
        self._font(11, bold=True)
        self._cell(0, self._width, title)
        self._pdf.ln(LINE_MM + 1)

    def facts(self, rows: Sequence[tuple[str, str]], *, emphasis: Sequence[str] = ()) -> None:
        """Labelled facts, one a line: the label, then its value."""
        label_width = self._width * 0.38
        for label, value in rows:
            self._room(LINE_MM)
            self._font(10, color=MUTED)
            self._cell(0, label_width, label)
            self._font(10, bold=label in emphasis)
            self._cell(label_width, self._width - label_width, value)
            self._pdf.ln(LINE_MM)

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[str]], *, total: Sequence[str] | None = None) -> None:
        """A table whose head is repeated on every page it runs onto."""
        shares = sum(column.width for column in columns)
        widths = [self._width * column.width / shares for column in columns]

        def line(cells: Sequence[str], *, bold: bool, color=INK, band: bool = False) -> None:
            if band:
                self._pdf.set_fill_color(*BAND)
                self._pdf.rect(MARGIN_MM, self._pdf.get_y(), self._width, LINE_MM, style="F")
            self._font(9, bold=bold, color=color)
            x = 0.0
            for column, width, text in zip(columns, widths, cells):
                self._cell(x, width, text, end=column.numeric)
                x += width
            self._pdf.ln(LINE_MM)

        def head() -> None:
            line([column.title for column in columns], bold=True, color=MUTED, band=True)

        self._room(2 * LINE_MM)
        head()
        for row in rows:
            if self._room(LINE_MM):
                head()
            line(row, bold=False)
        if total is not None:
            self._room(LINE_MM)
            self._rule(gap=0)
            line(total, bold=True)

    def note(self, text: str) -> None:
        """A paragraph, wrapped to the line."""
        self._pdf.ln(2)
        self._font(9, color=MUTED)
        self._pdf.set_x(MARGIN_MM)
        text = self._text(text)
        self._pdf.set_text_shaping(use_shaping_engine=True, direction=self._direction(text))
        self._pdf.multi_cell(self._width, 5, text, align="R" if self.rtl else "L")

    def pdf(self) -> bytes:
        return bytes(self._pdf.output())

    def _rule(self, gap: float = 3) -> None:
        y = self._pdf.get_y()
        self._pdf.set_draw_color(*RULE)
        self._pdf.line(MARGIN_MM, y, MARGIN_MM + self._width, y)
        self._pdf.ln(gap)

    def _room(self, height: float) -> bool:
        """A new page when `height` does not fit on this one (True if it began one)."""
        if self._pdf.get_y() + height <= self._pdf.page_break_trigger:
            return False
        self._pdf.add_page()
        return True

    def draw_footer(self) -> None:
        pdf = self._pdf
        pdf.set_y(-MARGIN_MM)
        self._font(8, color=MUTED)
        self._cell(0, self._width, f"{self._footer} · {pdf.page_no()}")


class _Pdf(FPDF):
    """fpdf2's document, with our footer on every page."""

    def __init__(self, sheet: Sheet, **options) -> None:
        super().__init__(**options)
        self._sheet = sheet

    def footer(self) -> None:
        self._sheet.draw_footer()
