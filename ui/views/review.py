"""The Review page (run by st.navigation from ui/main.py)."""

from ui.review_page import show

show()
