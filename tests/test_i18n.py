# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Translations: the committed .pot is what Odoo exports today, fr/de/es translate every term of
it and keep its placeholders, the engine's error catalogue (``mailsync/errors.py``) is shown in
the user's language, and a French user's web client shows the overview page in French.

Regenerate the .pot after a change of a translatable text (README: Develop):
    odoo-bin -d <db with crm_mail_sync installed> --i18n-export=i18n/crm_mail_sync.pot
        --modules=crm_mail_sync --language= --stop-after-init
then translate the new terms in i18n/fr.po, de.po and es.po.
"""

import json
import re
from collections import Counter

import polib

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger
from odoo.tools.misc import file_path
from odoo.tools.translate import TranslationModuleReader

from odoo.addons.mail.tests.common import mail_new_test_user

from ..mailsync import errors
from .common import MailSyncCase, new_login

MODULE = "crm_mail_sync"
POT = f"{MODULE}/i18n/{MODULE}.pot"
LANGS = {"fr": "fr_FR", "de": "de_DE", "es": "es_ES"}
TOUR_VALUES_KEY = "crm_mail_sync_tour_values"
MAILBOX_LOGGER = "odoo.addons.crm_mail_sync.models.mail_sync_mailbox"

# What a translation must keep as it is: Python (%s, %(name)s), brace ({where}) and QWeb
# ({{ expr }}) placeholders, the HTML tags, and the product names.
PLACEHOLDER_RX = re.compile(r"%(?:\([^)]+\))?[sdfr]|%%|\{\{.*?\}\}|\{[A-Za-z_]\w*\}|\{\}")
TAG_RX = re.compile(r"</?([A-Za-z][A-Za-z0-9]*)\b")
PRODUCT_NAMES = (
    "Mail Sync",
    "Smart Mail",
    "Odoo",
    "Gmail",
    "Google",
    "Microsoft 365",
    "IMAP",
    "SMTP",
    "OAuth",
)


def _entries(path):
    return [entry for entry in polib.pofile(file_path(path)) if not entry.obsolete]


def po_translations(code):
    """{msgid: msgstr} of ``i18n/<code>.po``."""
    return {entry.msgid: entry.msgstr for entry in _entries(f"{MODULE}/i18n/{code}.po")}


def exported_msgids(cr):
    """The msgids Odoo's exporter finds for the installed addon now (what --i18n-export writes
    into the .pot)."""
    reader = TranslationModuleReader(cr, modules=[MODULE])
    return {
        source
        for module, _type, _name, _res_id, source, _value, _comments in reader
        if module == MODULE
    }


def _diff(title, terms):
    return f"{title} ({len(terms)}):\n" + "\n".join(f"  {term!r}" for term in sorted(terms))


@tagged("post_install", "-at_install")
class TestI18n(MailSyncCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for lang in LANGS.values():
            cls.env["res.lang"]._activate_lang(lang)
        cls.translations = {code: po_translations(code) for code in LANGS}

    # ------------------------------------------------------------------ the files
    def test_pot_is_up_to_date(self):
        committed = {entry.msgid for entry in _entries(POT)}
        exported = exported_msgids(self.env.cr)
        self.assertTrue(exported, "the exporter found nothing: is the addon installed?")
        missing, stale = exported - committed, committed - exported
        self.assertFalse(
            missing or stale,
            "i18n/crm_mail_sync.pot is stale: export it again (see this file's docstring)\n"
            + _diff("missing from the .pot", missing)
            + "\n"
            + _diff("no longer exported", stale),
        )

    def test_every_term_is_translated(self):
        pot = {entry.msgid for entry in _entries(POT)}
        for code in LANGS:
            with self.subTest(lang=code):
                entries = _entries(f"{MODULE}/i18n/{code}.po")
                msgids = {entry.msgid for entry in entries}
                self.assertFalse(pot - msgids, _diff(f"{code}.po lacks", pot - msgids))
                self.assertFalse(msgids - pot, _diff(f"{code}.po has extra", msgids - pot))
                untranslated = {e.msgid for e in entries if not e.msgstr.strip()}
                self.assertFalse(untranslated, _diff(f"{code}.po leaves empty", untranslated))
                fuzzy = {e.msgid for e in entries if "fuzzy" in e.flags}
                self.assertFalse(fuzzy, _diff(f"{code}.po marks fuzzy", fuzzy))

    def test_translations_keep_placeholders_tags_and_product_names(self):
        for code, translations in self.translations.items():
            problems = []
            for msgid, msgstr in translations.items():
                if not msgstr:
                    continue
                if Counter(PLACEHOLDER_RX.findall(msgid)) != Counter(
                    PLACEHOLDER_RX.findall(msgstr)
                ):
                    problems.append(("placeholders", msgid, msgstr))
                if Counter(TAG_RX.findall(msgid)) != Counter(TAG_RX.findall(msgstr)):
                    problems.append(("HTML tags", msgid, msgstr))
                lost = [name for name in PRODUCT_NAMES if name in msgid and name not in msgstr]
                if lost:
                    problems.append((f"product names {lost}", msgid, msgstr))
            with self.subTest(lang=code):
                self.assertFalse(
                    problems,
                    f"{code}.po:\n"
                    + "\n".join(
                        f"  {what}: {msgid!r} -> {msgstr!r}" for what, msgid, msgstr in problems
                    ),
                )

    # ------------------------------------------------------------------ the engine's catalogue
    def _catalogue_errors(self):
        """One error of every kind for every provider, with host and port, and a
        message-level one with its folder and UID."""
        for kind in errors.KINDS:
            for provider in errors.PROVIDERS:
                yield errors.SyncError(kind, host="imap.example.test", port=993, provider=provider)
                yield errors.SyncError(kind, provider=provider, uid=7, folder="INBOX (old)")
        yield errors.SyncError(
            "folder_missing", host="imap.example.test", port=993, folder="Archives (2024)"
        )

    def test_every_catalogue_text_is_in_the_pot(self):
        pot = {entry.msgid for entry in _entries(POT)}
        texts = {
            *errors._MESSAGES.values(),
            errors._FOLDER_MISSING_NAMED,
            errors._MESSAGE_PLACE,
            *errors._GENERIC_FIXES.values(),
            *errors._PROVIDER_FIXES.values(),
        }
        self.assertFalse(texts - pot, _diff("catalogue texts not exported", texts - pot))

    def test_catalogue_translated_in_every_language(self):
        Log = self.env["mail.sync.log"]
        for code, lang in LANGS.items():
            translations = self.translations[code]
            gettext = lambda text, t=translations: t.get(text) or text  # noqa: E731
            for error in self._catalogue_errors():
                for english in (str(error), error.summary, error.fix):
                    with self.subTest(lang=lang, kind=error.kind, text=english):
                        expected = errors.translate(english, gettext)
                        self.assertNotEqual(expected, english, "not translated")
                        if error.host:
                            self.assertEqual(
                                "imap.example.test:993" in expected,
                                "imap.example.test:993" in english,
                            )
                        if error.uid is not None and "UID 7" in english:
                            self.assertIn("UID 7", expected)
                            self.assertIn("'INBOX (old)'", expected)
                        # Odoo's env._ finds crm_mail_sync's .po from the log model.
                        self.assertEqual(Log.with_context(lang=lang)._translated(english), expected)
        self.assertEqual(
            Log.with_context(lang="en_US")._translated(errors.fix_for("dns")), errors.fix_for("dns")
        )
        self.assertEqual(
            Log.with_context(lang="fr_FR")._translated("* OK server words"),
            "* OK server words",
            "words from elsewhere are kept",
        )

    def test_error_log_and_button_errors_in_french(self):
        fr = self.translations["fr"]
        login, password = self._dovecot_user(new_login("i18n"))
        rep = mail_new_test_user(
            self.env,
            login=f"ms_i18n_{login.split('@')[0]}",
            name="Rémi Rep",
            email=login,
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        mailbox = self._mailbox(rep, login, password)
        error = errors.SyncError("dns", host="imap.example.test", port=993)
        log = self.env["mail.sync.log"]._log(mailbox, error)
        summary_en = "The server name could not be found (imap.example.test:993)."
        summary_fr = fr["The server name could not be found{where}."].format(
            where=" (imap.example.test:993)"
        )
        fix_fr = fr[errors.fix_for("dns")]
        self.assertNotIn(summary_fr, (summary_en, ""))

        # Stored in English ...
        log.flush_recordset()
        self.env.cr.execute("SELECT summary, fix FROM mail_sync_log WHERE id = %s", [log.id])
        self.assertEqual(self.env.cr.fetchone(), (summary_en, errors.fix_for("dns")))
        self.assertEqual(log.read(["summary", "fix"])[0]["summary"], summary_en)
        # ... read in the reader's language: read, the web client's lists and forms.
        log_fr = log.with_context(lang="fr_FR")
        self.assertEqual(
            log_fr.read(["summary", "fix"])[0], {"id": log.id, "summary": summary_fr, "fix": fix_fr}
        )
        records = log_fr.web_search_read(
            [("id", "=", log.id)], {"summary": {}, "fix": {}, "display_name": {}}
        )
        self.assertEqual(
            records["records"],
            [{"id": log.id, "summary": summary_fr, "fix": fix_fr, "display_name": summary_fr}],
        )
        lines = mailbox.with_context(lang="fr_FR").web_read(
            {"log_ids": {"fields": {"summary": {}, "fix": {}}}}
        )[0]["log_ids"]
        self.assertEqual(lines, [{"id": log.id, "summary": summary_fr, "fix": fix_fr}])
        # A repeat is still counted on the same (English) line.
        self.assertEqual(
            self.env["mail.sync.log"].with_context(lang="fr_FR")._log(mailbox, error), log
        )
        self.assertEqual(log.count, 2)

        # The text a button shows (Test connection, Sync now, the dry run).
        self.assertEqual(
            mailbox.with_context(lang="fr_FR")._user_error(error), f"{summary_fr}\n{fix_fr}"
        )
        auth = errors.SyncError("auth")
        self.assertEqual(
            mailbox.with_context(lang="fr_FR")._user_error(auth),
            f"{fr[errors.AUTH_FAILED_TEXT]}\n{fr[errors.fix_for('auth')]}",
        )
        self.assertEqual(
            mailbox._user_error(auth), f"{errors.AUTH_FAILED_TEXT}\n{errors.fix_for('auth')}"
        )

    def test_status_meaning_in_french(self):
        fr = self.translations["fr"]
        login, password = self._dovecot_user(new_login("i18n"))
        rep = mail_new_test_user(
            self.env,
            login=f"ms_i18n_{login.split('@')[0]}",
            name="Rémi Rep",
            email=login,
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        mailbox = self._mailbox(rep, login, password)
        english = mailbox.state_description
        self.assertTrue(english)
        self.assertEqual(mailbox.with_context(lang="fr_FR").state_description, fr[english])


@tagged("post_install", "-at_install")
class TestI18nTour(MailSyncCase, HttpCase):
    """A French Mail Sync manager's overview page: the badge, its meaning, the error log's
    summary and fix, and the page's own words, all in French."""

    def test_tour_overview_in_french(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        # What a language install does for the addon: its .po into the database (the terms of
        # views, fields and selections; code terms are read from the .po file directly).
        self.env["ir.module.module"]._load_module_terms([MODULE], ["fr_FR"], overwrite=True)
        fr = po_translations("fr")
        login, _password = self._dovecot_user(new_login("i18n"))
        rep = mail_new_test_user(
            self.env,
            login=f"ms_i18n_{login.split('@')[0]}",
            name="Rémi Rep",
            email=login,
            groups="base.group_user,sales_team.group_sale_salesman",
        )
        mailbox = self._enabled_mailbox(rep, login, "not-the-password")
        with mute_logger(MAILBOX_LOGGER):
            self._sync(mailbox)
        self.assertEqual(mailbox.state, "error")
        log = mailbox.log_ids
        self.assertEqual(len(log), 1)
        self.user_manager.lang = "fr_FR"
        values = {
            "login": login,
            "badge": fr["Error"],
            "tooltip": fr[mailbox.with_context(lang="en_US").state_description],
            "summary": errors.translate(log.summary, lambda text: fr.get(text) or text),
            "fix": errors.translate(log.fix, lambda text: fr.get(text) or text),
            "error_log": fr["Error log"],
        }
        english = {
            "badge": "Error",
            "tooltip": mailbox.state_description,
            "summary": log.summary,
            "fix": log.fix,
            "error_log": "Error log",
        }
        for key, text in english.items():
            self.assertTrue(values[key] and values[key] != text, f"{key}: no French for {text!r}")
        code = (
            f"sessionStorage.setItem({TOUR_VALUES_KEY!r}, "
            f"{json.dumps(json.dumps(values))}); odoo.startTour("
            f"'crm_mail_sync_i18n_fr_tour', {{stepDelay: 0, startUrl: "
            f"'/odoo/action-crm_mail_sync.mail_sync_settings_action'}})"
        )
        self.start_tour(
            "/odoo/action-crm_mail_sync.mail_sync_settings_action",
            "crm_mail_sync_i18n_fr_tour",
            login=self.user_manager.login,
            code=code,
        )
