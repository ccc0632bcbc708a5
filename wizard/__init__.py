from . import mail_sync_disconnect_wizard
from . import mail_sync_dry_run
