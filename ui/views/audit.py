"""The Audit page (run by st.navigation from ui/app.py)."""

from ui.audit_page import show

show()
