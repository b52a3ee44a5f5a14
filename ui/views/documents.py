"""The Documents page (run by st.navigation from ui/app.py)."""

from ui.documents_page import show

show()
