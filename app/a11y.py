"""What Streamlit's theme options cannot set for people who use a keyboard, injected once per page as a style sheet
(docs/app.md, "Accessibility", says what each rule is for and which Streamlit behaviour it works around)."""

from __future__ import annotations

import streamlit as st

# Some controls draw no focus of their own (a file uploader's icon buttons): whatever the keyboard focuses gets an
# outline in its text colour, which a mouse's click does not draw; a checkbox, toggle or radio button hides its input,
# so its label is outlined (Streamlit draws their focus only sometimes). Two toolbars fade in on mouse hover only, so a
# keyboard's focus on their buttons is invisible (WCAG 2.4.7): an element's (a photo's or a chart's Fullscreen) and a
# Plotly chart's (Zoom, Pan, Download as PNG); focus within either shows it as hover does. A file uploader's hidden
# file input takes a Tab stop of its own with nothing drawn: its drop zone is outlined then. A disabled widget's
# label (the settings while a run trains) greys to below 4.5:1 against the page (WCAG 1.4.3, as axe-core reads it):
# it stays readable, a little faded.
STYLES = """
[data-testid="stElementToolbar"]:focus-within { opacity: 1; }
.js-plotly-plot .plotly .modebar--hover:focus-within > .modebar-group { opacity: 1; }
:focus-visible { outline: 2px solid currentColor !important; outline-offset: 2px; }
label:has(input:focus-visible) { outline: 2px solid currentColor; outline-offset: 2px; }
[data-testid="stFileUploaderDropzone"]:has(input:focus) { outline: 2px solid currentColor; outline-offset: 2px; }
[data-testid="stWidgetLabel"], [data-testid="stWidgetLabel"] p { color: inherit; }
[data-testid="stElementContainer"]:has(:disabled) [data-testid="stWidgetLabel"] { opacity: 0.8; }
"""


def keyboard_styles_ui() -> None:
    """Add the style sheet to the page (it draws nothing)."""
    st.html(f"<style>{STYLES}</style>")
