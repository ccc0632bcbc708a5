# One file per model; the order of these lines does not matter (a test installs the addon with
# them shuffled): a model that inherits a mixin of this addon imports the mixin's file itself.
from . import crm_lead
from . import ir_attachment
from . import ir_mail_server
from . import mail_mail
from . import mail_message
from . import mail_sync_credential
from . import mail_sync_exclusion
from . import mail_sync_folder
from . import mail_sync_header_index
from . import mail_sync_log
from . import mail_sync_mailbox
from . import mail_sync_matcher
from . import mail_sync_message
from . import mail_sync_message_removal
from . import mail_sync_oauth_mixin
from . import mail_sync_record_mixin
from . import mail_sync_skipped
from . import res_company
from . import res_config_settings
from . import res_partner
from . import res_users
