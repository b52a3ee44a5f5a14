"""The sign-in page, the only page offered before a key is accepted."""

from ui.sign_in_page import show

show()
