"""The Ask page (run by st.navigation from ui/app.py)."""

from ui.ask_page import show

show()
