"""HTTP controllers of crm_mail_sync.

The OAuth callback ("Connect with Google") lives here once it is added; nothing is exposed yet.
"""
