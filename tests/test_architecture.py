# Part of crm_mail_sync. License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One file per model, no override of the addon by the addon.

The registry's class of every model is walked (its MRO); the classes that crm_mail_sync itself
defines (``_module == "crm_mail_sync"`` in the class's own namespace: the registry's own classes
only inherit that attribute) are grouped by the model they define or extend (the class's own
``_name``). An abstract mixin of the addon that a model inherits (``mail.sync.oauth.mixin``,
``mail.sync.record.mixin``) is its own model: its classes are grouped under the mixin's name and
a model's method that overrides a mixin method is not counted (that is what a mixin is for).

- **no same-module override**: within one model, no method name is defined by two classes of
  the addon (a method of this addon overriding another method of this addon: the result then
  depends on the order of ``models/__init__.py``);
- **one file per model**: the addon's classes of one model all live in one Python file.

The failure message lists every offence (model, method, the files and lines): the to-do list
of the restructuring.
"""

import inspect
import os
from collections import defaultdict

from odoo.models import MetaModel
from odoo.tests import tagged
from odoo.tests.common import TransactionCase

MODULE = "crm_mail_sync"
ADDON_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _relative(path):
    path = os.path.realpath(path)
    root = os.path.realpath(ADDON_ROOT)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else path


def _method_of(value):
    """The function behind a method-like class attribute, or None for anything else (fields,
    ``_name``, ``_sql_constraints``, …)."""
    if isinstance(value, (classmethod, staticmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    if inspect.isfunction(value):
        return value
    return None


def addon_classes(registry):
    """{model name: [class, …]} of the classes crm_mail_sync defines, found by walking the MRO
    of every model of ``registry``; each model's classes in load order (base first)."""
    by_model = defaultdict(dict)  # dict as an ordered set
    for model_class in registry.models.values():
        for klass in reversed(model_class.__mro__):
            own = vars(klass)
            if own.get("_module") == MODULE:
                by_model[own["_name"]][klass] = None
    return {model: list(classes) for model, classes in by_model.items()}


def where(klass, func=None):
    """``path:line (ClassName)`` of a class, or of one of its methods."""
    path = _relative(inspect.getsourcefile(klass))
    if func is not None:
        line = inspect.unwrap(func).__code__.co_firstlineno  # under @api.model_create_multi
    else:
        line = inspect.getsourcelines(klass)[1]
    return f"{path}:{line} ({klass.__name__})"


def same_module_overrides(classes_by_model):
    """[(model, method, [where, …])] for every method name defined by two classes of a model."""
    found = []
    for model in sorted(classes_by_model):
        defined = defaultdict(list)
        for klass in classes_by_model[model]:
            for name, value in vars(klass).items():
                func = _method_of(value)
                if func is not None:
                    defined[name].append(where(klass, func))
        for name in sorted(defined):
            if len(defined[name]) > 1:
                found.append((model, name, defined[name]))
    return found


def files_per_model(classes_by_model):
    """{model: [file, …]} of the models whose classes live in more than one file."""
    spread = {}
    for model in sorted(classes_by_model):
        files = []
        for klass in classes_by_model[model]:
            path = _relative(inspect.getsourcefile(klass))
            if path not in files:
                files.append(path)
        if len(files) > 1:
            spread[model] = files
    return spread


@tagged("post_install", "-at_install")
class TestArchitecture(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.classes = addon_classes(cls.env.registry)

    def test_walk_finds_every_class_of_the_addon(self):
        """The MRO walk is not vacuous: it sees the addon's own models, the models it extends
        and its mixins, and every model class the addon registered with Odoo."""
        for model in (
            "mail.sync.mailbox",
            "mail.sync.credential",
            "mail.sync.message",
            "mail.sync.folder",
            "mail.sync.oauth.mixin",
            "mail.sync.record.mixin",
            "crm.lead",
            "res.partner",
            "res.users",
            "mail.message",
        ):
            self.assertIn(model, self.classes)
        walked = {klass for classes in self.classes.values() for klass in classes}
        registered = set(MetaModel.module_to_models.get(MODULE, ()))
        self.assertTrue(registered)
        missing = sorted(where(klass) for klass in registered - walked)
        self.assertFalse(
            missing,
            "classes of the addon that no model of the registry "
            "inherits:\n  " + "\n  ".join(missing),
        )
        # The mixins are their own models: their classes are not counted under the models
        # that inherit them.
        mixin_files = {
            _relative(inspect.getsourcefile(k)) for k in self.classes["mail.sync.oauth.mixin"]
        }
        self.assertEqual(mixin_files, {"models/mail_sync_oauth_mixin.py"})

    def test_no_method_overrides_another_of_this_addon(self):
        found = same_module_overrides(self.classes)
        lines = [f"{model}.{method}: " + ", ".join(places) for model, method, places in found]
        if found:
            self.fail(
                f"{len(found)} method(s) of crm_mail_sync override another method of "
                f"crm_mail_sync (same model):\n  " + "\n  ".join(lines)
            )

    def test_one_file_per_model(self):
        spread = files_per_model(self.classes)
        lines = [
            f"{model} ({len(files)} files): " + ", ".join(files) for model, files in spread.items()
        ]
        if spread:
            self.fail(
                f"{len(spread)} model(s) defined or extended by crm_mail_sync in more than "
                f"one Python file:\n  " + "\n  ".join(lines)
            )
