# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Batches: the items of a ``pools:``/``networks:``/``domains:`` list, with top-level values as their defaults."""

from __future__ import annotations


def build_batch(params, key, defaults, make_spec, kind, error):
    """The specs of one call and whether it was a batch.

    Without ``params[key]`` the top-level parameters are the one item (label ''). Otherwise each item of
    ``params[key]`` is merged with the top-level values of ``defaults`` it leaves unset and made into a spec
    by ``make_spec(item, label)`` (label ``key[index]``); every item is validated before this returns, and
    a name given twice raises ``error`` naming both items. Specs have ``name`` and ``label``.
    """
    if params.get(key) is None:
        return [make_spec(params, '')], False
    specs = []
    for index, item in enumerate(params[key]):
        merged = dict(item)
        for option in defaults:
            if merged.get(option) is None:
                merged[option] = params.get(option)
        specs.append(make_spec(merged, '%s[%d]' % (key, index)))
    seen = {}
    for spec in specs:
        if spec.name in seen:
            raise error("%s '%s' appears twice: %s and %s" % (kind, spec.name, seen[spec.name], spec.label))
        seen[spec.name] = spec.label
    return specs, True
