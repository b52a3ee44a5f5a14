"""The Documents page (run by st.navigation from ui/main.py)."""

from ui.documents_page import show

show()
