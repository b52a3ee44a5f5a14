"""The Ask page (run by st.navigation from ui/main.py)."""

from ui.ask_page import show

show()
