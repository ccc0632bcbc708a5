# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The six roles of PRODUCT.md against mailboxes, error-log entries, credentials, synced mail and
its attachments — through the ORM as each user and through JSON-RPC over HTTP as each user.

Every expectation below is written out (``EXPECTED``), not derived from the rules under test.
"""

import json

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync import errors
from .common import MailSyncCase, json_call_kw

# role -> groups (README "Roles and access")
ROLES = {
    "administrator": "base.group_user,base.group_system",
    "company_manager": "base.group_user,sales_team.group_sale_salesman_all_leads,"
    "crm_mail_sync.group_mail_sync_manager",
    "marketing_manager": "base.group_user,crm_mail_sync.group_mail_sync_manager",
    "sales_manager": "base.group_user,sales_team.group_sale_manager",
    "salesperson": "base.group_user,sales_team.group_sale_salesman_all_leads",
    "jr_salesperson": "base.group_user,sales_team.group_sale_salesman",
}
MANAGERS = {"administrator", "company_manager", "marketing_manager", "sales_manager"}
READS_ALL_LEADS = {"company_manager", "sales_manager", "salesperson"}

# What each role may do. "colleague": another salesperson's mailbox, its error-log entry, and the
# mail the Jr. salesperson's mailbox synced onto the colleague's lead (received, and sent by the
# Jr. — who is its author and creator). "jr_lead": mail synced onto the Jr's own lead.
EXPECTED = {
    role: {
        "read_colleague_mailbox": role in MANAGERS,
        "read_colleague_log": role in MANAGERS,
        "read_mail_on_colleague_lead": role in READS_ALL_LEADS,
        "read_mail_on_jr_lead": role in READS_ALL_LEADS | {"jr_salesperson"},
        # Settings administrators may hand a mailbox over (its secrets are deleted then).
        "write_colleague_mailbox": role == "administrator",
    }
    for role in ROLES
}
SECRET_PREFIX = "S3cret-role-"
ACCESS_LOGGERS = (
    "odoo.addons.base.models.ir_rule",
    "odoo.addons.base.models.ir_model",
    "odoo.models",
    "odoo.http",
    "odoo.addons.mail.models.mail_message",
)


class RolesCase(MailSyncCase, HttpCase):
    """A user of each role, a colleague, mailboxes, error-log entries, and mail the Jr's mailbox
    synced (with attachments) onto the colleague's lead and the Jr's own lead."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.users = {
            # With Odoo's export right, so that exports are exercised too.
            role: mail_new_test_user(
                cls.env,
                login=f"role_{role}",
                name=role.replace("_", " "),
                email=f"{role}@ourco.example",
                groups=groups + ",base.group_allow_export",
            )
            for role, groups in ROLES.items()
        }
        cls.colleague = mail_new_test_user(
            cls.env,
            login="role_colleague",
            name="Colin Colleague",
            email="colin@ourco.example",
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        # Mailboxes: one per role, the colleague's, and one in another company.
        cls.mailboxes = {
            role: cls._role_mailbox(user, f"{SECRET_PREFIX}{role}")
            for role, user in cls.users.items()
        }
        cls.mailbox_colleague = cls._role_mailbox(cls.colleague, SECRET_PREFIX + "colleague")
        cls.company_b = cls.env["res.company"].create({"name": "Other Co"})
        cls.user_b = mail_new_test_user(
            cls.env,
            login="role_other_company",
            name="Otto Other",
            email="otto@other.example",
            groups="base.group_user,sales_team.group_sale_manager",
            company_id=cls.company_b.id,
            company_ids=[Command.set(cls.company_b.ids)],
        )
        cls.mailbox_b = cls._role_mailbox(
            cls.user_b, SECRET_PREFIX + "other-company", company_id=cls.company_b.id
        )
        # Error-log entries.
        Log = cls.env["mail.sync.log"].sudo()
        cls.log_colleague = Log._log(cls.mailbox_colleague, errors.SyncError("timeout", "t/o"))
        cls.log_own = {
            role: Log._log(mailbox, errors.SyncError("refused", "no"))
            for role, mailbox in cls.mailboxes.items()
        }
        # Synced mail: the Jr's mailbox recorded mail on the colleague's lead (received, and
        # sent by the Jr.) and on the Jr's own lead, with attachments — created as the sync
        # does when the Jr. clicks "Sync now" (sudo, as the Jr.: create_uid = the Jr.).
        jr = cls.users["jr_salesperson"]
        Lead = cls.env["crm.lead"]
        cls.lead_colleague = Lead.create(
            {
                "name": "Colleague's deal",
                "user_id": cls.colleague.id,
                "email_from": "buyer@bigco.example",
            }
        )
        cls.lead_jr = Lead.create(
            {"name": "Jr's deal", "user_id": jr.id, "email_from": "small@smallco.example"}
        )
        jr_mailbox = cls.mailboxes["jr_salesperson"]
        cls.msg_received = cls._synced_message(jr_mailbox, cls.lead_colleague, "received")
        cls.msg_sent = cls._synced_message(jr_mailbox, cls.lead_colleague, "sent")
        cls.msg_jr_lead = cls._synced_message(jr_mailbox, cls.lead_jr, "received")
        cls.on_colleague_lead = cls.msg_received | cls.msg_sent
        cls.all_synced = cls.on_colleague_lead | cls.msg_jr_lead

    @classmethod
    def _role_mailbox(cls, user, password, **values):
        vals = {
            "user_id": user.id,
            "email": user.email,
            "imap_host": "127.0.0.1",
            "imap_port": 1143,
            "imap_security": "none",
            "imap_login": user.email,
            "password": password,
        }
        vals.update(values)
        return cls.env["mail.sync.mailbox"].create(vals)

    @classmethod
    def _synced_message(cls, mailbox, lead, direction):
        env = cls.env(user=mailbox.user_id.id, su=True)
        attachment = env["ir.attachment"].create(
            {
                "name": f"{direction}.txt",
                "raw": f"synced {direction} attachment".encode(),
                "res_model": "crm.lead",
                "res_id": lead.id,
            }
        )
        return env["mail.message"].create(
            {
                "model": "crm.lead",
                "res_id": lead.id,
                "record_name": lead.name,
                "message_type": "email",
                "is_internal": True,
                "subtype_id": cls.env.ref("mail.mt_comment").id,
                "body": f"<p>Synced {direction} mail</p>",
                "subject": f"Synced {direction}",
                "author_id": mailbox.user_id.partner_id.id if direction == "sent" else False,
                "email_from": mailbox.email if direction == "sent" else "buyer@bigco.example",
                "message_id": f"<{direction}.{lead.id}@test.example>",
                "attachment_ids": [Command.set(attachment.ids)],
                "mail_sync_mailbox_id": mailbox.id,
                "mail_sync_direction": direction,
                "mail_sync_participants": f"From: buyer@bigco.example; To: {mailbox.email}",
            }
        )

    # ------------------------------------------------------------------ ORM
    def _forbidden(self, func, *args, **kwargs):
        with self.assertRaises(AccessError), mute_logger(*ACCESS_LOGGERS):
            func(*args, **kwargs)


@tagged("post_install", "-at_install")
class TestRoles(RolesCase):
    def test_install_maps_the_roles(self):
        for role, user in self.users.items():
            with self.subTest(role=role):
                self.assertTrue(user.has_group("crm_mail_sync.group_mail_sync_user"))
                self.assertEqual(
                    user.has_group("crm_mail_sync.group_mail_sync_manager"), role in MANAGERS
                )
        # Nothing to set up by hand: the sales and settings groups imply the Mail Sync ones.
        self.assertIn(
            self.env.ref("crm_mail_sync.group_mail_sync_manager"),
            self.env.ref("base.group_system").implied_ids,
        )

    def test_orm_matrix(self):
        for role, user in self.users.items():
            expected = EXPECTED[role]
            with self.subTest(role=role):
                self._check_orm(role, user, expected)

    def _check_orm(self, role, user, expected):
        Mailbox = self.env["mail.sync.mailbox"].with_user(user)
        own = self.mailboxes[role].with_user(user)
        colleague = self.mailbox_colleague.with_user(user)
        # Own mailbox: read, write (connection settings), never a secret back.
        data = own.read(["email", "password", "state", "has_password"])[0]
        self.assertIs(data["password"], False)
        self.assertTrue(data["has_password"])
        own.write({"sync_days": 7, "imap_host": "127.0.0.2"})
        own.write({"password": SECRET_PREFIX + role + "-new"})
        self.assertEqual(own.sudo()._get_secret("password"), SECRET_PREFIX + role + "-new")
        self.assertFalse(own.password)
        # Others' mailboxes: status for managers only, in their company only; nobody writes or
        # deletes another's mailbox (their server could receive its password).
        visible = Mailbox.search([])
        self.assertIn(own, visible)
        self.assertNotIn(self.mailbox_b, visible)
        self.assertEqual(self.mailbox_colleague in visible, expected["read_colleague_mailbox"])
        if expected["read_colleague_mailbox"]:
            values = colleague.read(["state", "last_error", "password", "log_ids"])[0]
            self.assertIs(values["password"], False)
            colleague._check_disconnect_access()
        else:
            self._forbidden(colleague.read, ["state"])
            self._forbidden(colleague._check_disconnect_access)
        if expected["write_colleague_mailbox"]:
            with self.env.cr.savepoint(flush=False) as savepoint:
                colleague.write({"imap_host": "127.0.0.2"})
                self.assertFalse(colleague.has_password)  # never sent to the new server
                savepoint.rollback()
                self.env.invalidate_all()
        else:
            self._forbidden(colleague.write, {"imap_host": "attacker.example"})
            self._forbidden(colleague.write, {"password": "overwritten"})
            self._forbidden(colleague.unlink)
        self._forbidden(self.mailbox_b.with_user(user).read, ["state"])
        # Nor through the users: another user's Mail Sync status for managers only.
        shown = self.colleague.with_user(user).read(["mail_sync_state", "mail_sync_mailbox_id"])
        self.assertEqual(
            shown[0]["mail_sync_state"], "draft" if expected["read_colleague_mailbox"] else False
        )
        self.assertEqual(user.with_user(user).mail_sync_state, "draft")
        other_user = {
            "user_id": self.user_employee.id,
            "email": "x@y.example",
            "imap_host": "127.0.0.1",
            "imap_security": "none",
        }
        if expected["write_colleague_mailbox"]:  # administrators set up a mailbox for anyone
            with self.env.cr.savepoint(flush=False) as savepoint:
                Mailbox.create(other_user)
                savepoint.rollback()
        else:
            self._forbidden(Mailbox.create, other_user)
        # Error log: own and (managers) the company's; read only.
        Log = self.env["mail.sync.log"].with_user(user)
        logs = Log.search([])
        self.assertIn(self.log_own[role], logs)
        self.assertEqual(self.log_colleague in logs, expected["read_colleague_log"])
        if not expected["read_colleague_log"]:
            self._forbidden(self.log_colleague.with_user(user).read, ["message"])
        self._forbidden(self.log_own[role].with_user(user).write, {"message": "x"})
        self._forbidden(self.log_own[role].with_user(user).unlink)
        # Credentials: nobody, through no operation, the owner included.
        Credential = self.env["mail.sync.credential"].with_user(user)
        self._forbidden(Credential.search, [])
        cred = (
            self.env["mail.sync.credential"]
            .sudo()
            .search([("mailbox_id", "=", own.id)])
            .with_user(user)
        )
        self.assertTrue(cred)
        self._forbidden(cred.read, ["token"])
        self._forbidden(cred.write, {"token": "x"})
        self._forbidden(cred.unlink)
        self._forbidden(Credential.create, {"mailbox_id": own.id, "kind": "password", "token": "x"})
        # Synced mail and its attachments: exactly where the lead is visible.
        Message = self.env["mail.message"].with_user(user)
        seen = Message.search([("id", "in", self.all_synced.ids)])
        want = (
            self.on_colleague_lead if expected["read_mail_on_colleague_lead"] else Message.browse()
        ) | (self.msg_jr_lead if expected["read_mail_on_jr_lead"] else Message.browse())
        self.assertEqual(seen, want.with_user(user))
        self.assertEqual(
            Message.search_count(
                [("mail_sync_mailbox_id", "!=", False), ("id", "in", self.all_synced.ids)]
            ),
            len(want),
        )
        for message in self.all_synced:
            readable = message in want
            attachment = message.attachment_ids.with_user(user)
            if readable:
                message.with_user(user).read(["body", "subject", "attachment_ids"])
                attachment.read(["datas"])
            else:
                self._forbidden(message.with_user(user).read, ["body"])
                self._forbidden(attachment.read, ["datas"])
                self._forbidden(message.with_user(user).write, {"body": "<p>rewritten</p>"})
                self._forbidden(message.with_user(user).unlink)
                self.assertFalse(message.with_user(user).is_current_user_or_guest_author)
        self.assertEqual(
            bool(
                self.env["ir.attachment"]
                .with_user(user)
                .search([("id", "in", self.on_colleague_lead.attachment_ids.ids)])
            ),
            expected["read_mail_on_colleague_lead"],
        )

    def test_company_limits_administrators_only(self):
        company = self.env.company
        limit_fields = ("mail_sync_mailbox_limit", "mail_sync_daily_cap")
        rights = mail_new_test_user(
            self.env,
            login="role_access_rights",
            name="Rita Rights",
            groups="base.group_user,base.group_erp_manager",
        )
        for role, user in dict(self.users, access_rights=rights).items():
            with self.subTest(role=role):
                for value, fname in enumerate(limit_fields, start=3):
                    if role == "administrator":
                        company.with_user(user).write({fname: value})
                        company.invalidate_recordset([fname])
                        self.assertEqual(company.with_user(user)[fname], value)
                    else:
                        self._forbidden(company.with_user(user).write, {fname: value})
        # OAuth app credentials: the Settings screen is for administrators only.
        Settings = self.env["res.config.settings"]
        for role, user in self.users.items():
            if role != "administrator":
                with self.subTest(role=role):
                    self._forbidden(Settings.with_user(user).create, {})

    # ------------------------------------------------------------------ JSON-RPC
    def _rpc(self, model, method, *args, **kwargs):
        return json_call_kw(self, model, method, *args, loggers=ACCESS_LOGGERS, **kwargs)

    def _rpc_ok(self, model, method, *args, **kwargs):
        body = self._rpc(model, method, *args, **kwargs)
        self.assertNotIn(
            "error", body, (model, method, body.get("error", {}).get("data", {}).get("message"))
        )
        self._assert_no_secret(json.dumps(body))
        return body["result"]

    def _rpc_denied(self, model, method, *args, **kwargs):
        body = self._rpc(model, method, *args, **kwargs)
        self.assertIn("error", body, (model, method, body.get("result")))
        self.assertEqual(
            body["error"]["data"]["name"],
            "odoo.exceptions.AccessError",
            (model, method, body["error"]["data"].get("message")),
        )
        self._assert_no_secret(json.dumps(body))

    def _assert_no_secret(self, text):
        self.assertNotIn(SECRET_PREFIX, text)

    def test_rpc_matrix(self):
        for role, user in self.users.items():
            with self.subTest(role=role):
                self.authenticate(user.login, user.login)
                self._check_rpc(role, self.mailboxes[role], EXPECTED[role])

    def _check_rpc(self, role, own, expected):
        MB, LOG, MSG, ATT = ("mail.sync.mailbox", "mail.sync.log", "mail.message", "ir.attachment")
        colleague = self.mailbox_colleague.id
        all_fields = list(self.env[MB].fields_get(attributes=["type"]))
        # Mailboxes.
        rows = self._rpc_ok(MB, "search_read", [], ["email", "password", "state"])
        ids = {row["id"] for row in rows}
        self.assertIn(own.id, ids)
        self.assertNotIn(self.mailbox_b.id, ids)
        self.assertEqual(colleague in ids, expected["read_colleague_mailbox"])
        self.assertTrue(all(row["password"] is False for row in rows))
        self._rpc_ok(MB, "read", [own.id], all_fields)
        self._rpc_ok(
            MB,
            "web_read",
            [own.id],
            specification={
                f: {} for f in ("email", "password", "has_password", "state", "last_error")
            },
        )
        self._rpc_ok(MB, "export_data", [own.id], ["email", "password", "imap_login"])
        self._rpc_ok(MB, "write", [own.id], {"sync_days": 5})
        if expected["read_colleague_mailbox"]:
            self._rpc_ok(MB, "read", [colleague], ["state", "last_error", "password"])
            self._rpc_ok(MB, "export_data", [colleague], ["email", "password"])
        else:
            self._rpc_denied(MB, "read", [colleague], ["state"])
            self._rpc_denied(MB, "export_data", [colleague], ["email"])
        if not expected["write_colleague_mailbox"]:
            self._rpc_denied(MB, "write", [colleague], {"imap_host": "attacker.example"})
            self._rpc_denied(MB, "write", [colleague], {"password": "overwritten"})
            self._rpc_denied(MB, "unlink", [colleague])
        self._rpc_denied(MB, "read", [self.mailbox_b.id], ["state"])
        # Error log.
        log_ids = {row["id"] for row in self._rpc_ok(LOG, "search_read", [], ["message"])}
        self.assertIn(self.log_own[role].id, log_ids)
        self.assertEqual(self.log_colleague.id in log_ids, expected["read_colleague_log"])
        if not expected["read_colleague_log"]:
            self._rpc_denied(LOG, "read", [self.log_colleague.id], ["message"])
        self._rpc_denied(LOG, "write", [self.log_own[role].id], {"message": "x"})
        self._rpc_denied(LOG, "unlink", [self.log_own[role].id])
        self._rpc_denied(LOG, "create", {"mailbox_id": own.id, "kind": "auth"})
        # Credentials: nobody.
        cred = self.env["mail.sync.credential"].sudo().search([("mailbox_id", "=", own.id)])
        self._rpc_denied("mail.sync.credential", "search_read", [], ["token"])
        self._rpc_denied("mail.sync.credential", "read", cred.ids, ["token"])
        self._rpc_denied("mail.sync.credential", "export_data", cred.ids, ["token"])
        self._rpc_denied("mail.sync.credential", "unlink", cred.ids)
        # Synced mail and attachments.
        want = set()
        if expected["read_mail_on_colleague_lead"]:
            want |= set(self.on_colleague_lead.ids)
        if expected["read_mail_on_jr_lead"]:
            want |= set(self.msg_jr_lead.ids)
        rows = self._rpc_ok(MSG, "search_read", [("id", "in", self.all_synced.ids)], ["body"])
        self.assertEqual({row["id"] for row in rows}, want)
        for message in self.all_synced:
            attachment = message.attachment_ids.ids
            if message.id in want:
                self._rpc_ok(MSG, "read", [message.id], ["body", "attachment_ids"])
                self._rpc_ok(ATT, "read", attachment, ["datas"])
                continue
            self._rpc_denied(MSG, "read", [message.id], ["body"])
            self._rpc_denied(MSG, "write", [message.id], {"body": "<p>rewritten</p>"})
            self._rpc_denied(MSG, "unlink", [message.id])
            self._rpc_denied(ATT, "read", attachment, ["datas"])
            response = self.url_open(f"/web/content/{attachment[0]}?download=true")
            self.assertIn(response.status_code, (403, 404))
        # The chatter of the colleague's lead (the Discuss route does not check the lead: the
        # message rules do).
        chatter = self.make_jsonrpc_request(
            "/mail/thread/messages",
            {"thread_model": "crm.lead", "thread_id": self.lead_colleague.id},
        )
        listed = {m["id"] if isinstance(m, dict) else m for m in chatter["messages"]}
        self.assertEqual(listed & set(self.all_synced.ids), want & set(self.on_colleague_lead.ids))


@tagged("post_install", "-at_install")
class TestSharing(RolesCase):
    """The Jr's sharing (everyone / subject and participants only / private) x each role x
    chatter, message search, RPC read and attachment download."""

    def _expect(self, role, message, mode):
        on_jr_lead = message == self.msg_jr_lead
        readable_record = role in READS_ALL_LEADS or (on_jr_lead and role == "jr_salesperson")
        whole = role in MANAGERS or role == "jr_salesperson"  # the owner and managers
        listed = readable_record and (mode != "private" or whole)
        content = listed and (mode == "everyone" or whole)
        return listed, content

    def test_three_modes_for_each_role(self):
        from odoo.addons.mail.tools.discuss import Store

        jr = self.users["jr_salesperson"]
        originals = {m.id: (m.body, m.attachment_ids) for m in self.all_synced}
        for mode in ("metadata", "private", "everyone", "metadata"):
            jr.with_user(jr).write({"mail_sync_sharing": mode})  # the owner's own choice
            self.assertEqual(self.mailboxes["jr_salesperson"].sharing, mode)
            self.env.invalidate_all()
            for role, user in self.users.items():
                with self.subTest(mode=mode, role=role):
                    Message = self.env["mail.message"].with_user(user)
                    found = Message.search([("id", "in", self.all_synced.ids)])
                    store = Store()
                    found._to_store(store)
                    chatter = {row["id"]: row for row in store.get_result().get("mail.message", [])}
                    for message in self.all_synced:
                        listed, content = self._expect(role, message, mode)
                        body, attachments = originals[message.id]
                        self.assertEqual(message in found, listed, message.subject)
                        if not listed:
                            self._forbidden(message.with_user(user).read, ["body"])
                            self._forbidden(attachments.with_user(user).read, ["datas"])
                            continue
                        read = message.with_user(user).read(["body", "subject", "attachment_ids"])[
                            0
                        ]
                        self.assertEqual(read["subject"], message.subject)  # always shared
                        shown = str(chatter[message.id]["body"])
                        if content:
                            self.assertEqual(str(read["body"]), str(body))
                            self.assertIn("Synced", shown)
                            self.assertEqual(read["attachment_ids"], attachments.ids)
                            self.assertEqual(chatter[message.id]["attachment_ids"], attachments.ids)
                            attachments.with_user(user).read(["datas"])
                        else:
                            self.assertNotIn("Synced", str(read["body"]))
                            self.assertIn("buyer@bigco.example", str(read["body"]))
                            self.assertNotIn("Synced", shown)
                            self.assertFalse(read["attachment_ids"])
                            self.assertFalse(chatter[message.id]["attachment_ids"])
                            self._forbidden(attachments.with_user(user).read, ["datas"])
                        if not content:  # searching the content never finds what is not shown
                            self.assertFalse(
                                Message.search(
                                    [("id", "=", message.id), ("body", "ilike", "Synced")]
                                )
                            )
        # Back to everyone: everything as it was.
        jr.with_user(jr).write({"mail_sync_sharing": "everyone"})
        for message in self.all_synced:
            self.assertEqual(str(message.body), str(originals[message.id][0]))
            self.assertEqual(message.attachment_ids, originals[message.id][1])
            self.assertEqual(message.attachment_ids.res_model, "crm.lead")

    def test_downloads_follow_the_sharing(self):
        jr = self.users["jr_salesperson"]
        jr.with_user(jr).write({"mail_sync_sharing": "metadata"})
        attachment = self.msg_jr_lead.sudo().mail_sync_attachment_ids
        self.assertTrue(attachment)
        for role in ("salesperson", "jr_salesperson", "sales_manager"):
            with self.subTest(role=role):
                self.authenticate(self.users[role].login, self.users[role].login)
                response = self.url_open(f"/web/content/{attachment.id}?download=true")
                _listed, content = self._expect(role, self.msg_jr_lead, "metadata")
                self.assertEqual(response.status_code == 200, content, response.status_code)
                if content:
                    self.assertEqual(response.content, b"synced received attachment")

    def test_company_default_and_new_mail(self):
        """The company default applies to users who did not choose, to mail synced later too;
        only administrators change it."""
        self._forbidden(
            self.env.company.with_user(self.users["sales_manager"]).write,
            {"mail_sync_sharing": "private"},
        )
        self.env.company.sudo().write({"mail_sync_sharing": "private"})
        mailbox = self.mailboxes["salesperson"]
        self.assertEqual(mailbox.sharing, "private")
        message = self._synced_message(mailbox, self.lead_jr, "received")  # recorded later
        self.assertEqual(message.mail_sync_visibility, "private")
        self.assertNotIn("Synced", message.body)
        self._forbidden(message.with_user(self.users["jr_salesperson"]).read, ["body"])
