"""The Audit page (run by st.navigation from ui/main.py)."""

from ui.audit_page import show

show()
