# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The contract every module of the collection keeps: one failure type, one result, one entry point.

A module's ``main()`` builds its ``AnsibleModule`` and hands a manager to :func:`run_module`::

    def main():
        module = AnsibleModule(argument_spec=..., supports_check_mode=True)
        run_module(module, lambda result: ImageManager(module, result).run())

The manager records what it does in the :class:`Result` it is given and raises :class:`ModuleFailure`
(or a subclass) when the request cannot be carried out. :func:`run_module` turns the failure into one
``fail_json`` that still reports what had been done before it, so a failed call that changed nothing
says ``changed: false``. Side effects happen only in :meth:`Result.perform`: in check mode it records
the action without running it, and in a real run it records the action only once it has succeeded.
"""

from __future__ import annotations


class ModuleFailure(Exception):
    """The request cannot be carried out.

    ``msg`` says what failed, on which object, and what to do; ``about`` names the object itself
    (``"domain 'web1'"``, an image path) and is returned as ``failed_object``; ``returns`` are extra
    keys for the failure result.
    """

    def __init__(self, msg, about=None, **returns):
        super(ModuleFailure, self).__init__(msg)
        self.msg = msg
        self.about = about
        self.returns = returns

    def __str__(self):
        return self.msg


class Result(object):
    """What one module call (or one item of a batch) did, would do in check mode, and shows in diff mode."""

    def __init__(self, check_mode=False, diff_mode=False, **fields):
        self.check_mode = check_mode
        self.diff_mode = diff_mode
        self.actions = []
        self.differences = []
        self.warnings = []
        self.fields = dict(fields)
        self.items = []
        self._items_key = None
        self._diffs = []
        self._diff_as_list = False
        self._changed = False

    # --- recording ---------------------------------------------------------------------------------

    @property
    def changed(self):
        return self._changed or bool(self.actions) or any(item.changed for item in self.items)

    def mark_changed(self):
        """For a change that is not an action of its own (a file rewritten, an attribute set)."""
        self._changed = True

    def perform(self, action, side_effect=None, *args, **kwargs):
        """The one place side effects happen: run side_effect(*args, **kwargs) unless in check mode, then
        record the action. A side effect that raises records nothing, so the failure reports no change."""
        value = None
        if side_effect is not None and not self.check_mode:
            value = side_effect(*args, **kwargs)
        self.actions.append(action)
        return value

    def differ(self, line):
        """One difference between the actual and the asked state, as ``what: before -> after``."""
        self.differences.append(line)

    def warn(self, message):
        if message not in self.warnings:
            self.warnings.append(message)

    def plan_without(self, failure, plan, needed='creates it'):
        """Go on in check mode without something missing: a ``--check`` of a play whose earlier task would make
        it (a pool, a volume) cannot see it yet. Warns that check mode ``plan`` (what it does instead) and that
        a real run fails unless an earlier task does what is ``needed``; outside check mode raises failure."""
        if not self.check_mode:
            raise failure
        self.warn('%s; check mode %s (a real run fails unless an earlier task %s)' % (failure.msg, plan, needed))

    def set(self, **fields):
        """Module-specific return values (``image``, ``state``, ``snapshots`` ...)."""
        self.fields.update(fields)

    def item(self, key, **fields):
        """A child result for one item of a batch, returned in a list under ``key``; it shares the modes and
        its changes, actions and warnings count for the whole call."""
        if self._items_key not in (None, key):
            raise ValueError('one result holds items under one key, not %s and %s' % (self._items_key, key))
        self._items_key = key
        child = Result(self.check_mode, self.diff_mode, **fields)
        self.items.append(child)
        return child

    def add_diff(self, before, after, before_header=None, after_header=None):
        """One before/after pair; kept only in diff mode (building it may be skipped when not diff_mode)."""
        entry = {'before': before, 'after': after}
        if before_header is not None:
            entry['before_header'] = before_header
        if after_header is not None or before_header is not None:
            entry['after_header'] = before_header if after_header is None else after_header
        self._diffs.append(entry)
        return entry

    def diff_as_list(self):
        """Return ``diff`` as a list even when it holds one entry (batches, several files)."""
        self._diff_as_list = True

    # --- reporting ---------------------------------------------------------------------------------

    def all_warnings(self):
        found = list(self.warnings)
        for child in self.items:
            found.extend(warning for warning in child.all_warnings() if warning not in found)
        return found

    def as_dict(self, with_diff=True):
        """The keys the module returns: changed, actions, differences, the fields, items and diff."""
        report = dict(self.fields)
        report.update(changed=self.changed, actions=list(self.actions), differences=list(self.differences))
        if self._items_key is not None:
            report[self._items_key] = [child.as_dict(with_diff=False) for child in self.items]
        diffs = self._diffs + [entry for child in self.items for entry in child._diffs]
        if with_diff and self.diff_mode and diffs:
            report['diff'] = diffs if self._diff_as_list or len(diffs) > 1 else diffs[0]
        return report


def run_module(module, work):
    """Run ``work(result)`` and exit the module: ``exit_json`` with the result, or one ``fail_json``.

    ``work`` fills the :class:`Result` it is given (or returns a dict of facts, for ``*_info`` modules);
    a :class:`ModuleFailure` it raises is reported with everything the result had recorded up to then.
    """
    result = Result(module.check_mode, module._diff)
    fail_json = module.fail_json
    # Ansible's own helpers (atomic_move, set_owner_if_different, backup_local...) end the module with
    # fail_json: during work() that becomes a ModuleFailure, so their failures carry the result too.
    module.fail_json = _raise_failure
    try:
        facts = work(result)
    except ModuleFailure as failure:
        report = result.as_dict()
        report.update(failure.returns)
        if failure.about is not None:
            report['failed_object'] = failure.about
        _warn(module, result)
        fail_json(msg=failure.msg, **report)
    finally:
        module.fail_json = fail_json
    _warn(module, result)
    if isinstance(facts, dict):
        module.exit_json(changed=False, **facts)
    module.exit_json(**result.as_dict())


def _raise_failure(msg, **returns):
    raise ModuleFailure(msg, **returns)


def _warn(module, result):
    for warning in result.all_warnings():
        module.warn(warning)
