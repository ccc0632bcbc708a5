from . import test_install
from . import test_connection
from . import test_sync
from . import test_cron
from . import test_access
from . import test_matcher
from . import test_smart_mail
from . import test_oauth
