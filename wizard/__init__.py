from . import mail_sync_disconnect_wizard
