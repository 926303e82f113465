# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume's url: the options and the plan (pure). Downloads are tested in test_download.py, the
whole module against a real libvirtd in tests/integration/test_libvirt_volume_url.py."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume import (
    describe, download_reasons, plan_volume, summary, url_record)
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import build_specs

MIB = 1 << 20
URL = 'https://images.example/debian-12.qcow2'
SUM = 'sha256:' + 'ab' * 32
NEW_SUM = 'sha256:' + 'cd' * 32
XML = """<volume type='file'><name>a.qcow2</name><key>/p/a.qcow2</key>
  <capacity unit='bytes'>41943040</capacity><allocation unit='bytes'>200704</allocation>
  <target><path>/p/a.qcow2</path><format type='qcow2'/></target></volume>"""
NOBODY = {'domains': [], 'volumes': []}


def spec(**item):
    item = dict({'pool': 'pool', 'name': 'a.qcow2', 'url': URL, 'checksum': SUM}, **item)
    return build_specs(item)[0][0]


def source(cached=True, **changes):
    """The facts the manager reads of the image: from the cache, or (check mode, not cached) what is asked."""
    found = {'url': URL, 'checksum': SUM, 'path': '/var/cache/virtops/images/x' if cached else None,
             'download': not cached, 'format': 'qcow2' if cached else None, 'virtual_size': 40 * MIB if cached else None,
             'backing_file': None, 'size': 3 * MIB if cached else None}
    found.update(changes)
    return found


def existing(users=None, **source_changes):
    """An existing volume downloaded from URL with SUM, and the facts read for it."""
    return describe(XML, 'pool'), {'stored': url_record(URL, SUM, 40 * MIB), 'users': users or NOBODY,
                                   'source': source(**source_changes)}


@pytest.mark.parametrize('item, message', [
    ({'checksum': None}, 'volumes[0].checksum: is required with url'),
    ({'checksum': 'sha256:12'}, "volumes[0].checksum: 'sha256:12' is not a sha256 checksum"),
    ({'url': 'images.example/x.qcow2'}, "volumes[0].url: 'images.example/x.qcow2' is not a URL"),
    ({'src': '/srv/x.qcow2'}, 'volumes[0]: src and url are mutually exclusive'),
    ({'allocation': '1G'}, 'volumes[0].allocation: allocation does not apply to an import'),
])
def test_bad_url_input_is_refused_naming_the_item(item, message):
    params = {'pool': 'pool', 'volumes': [dict({'name': 'a', 'url': URL, 'checksum': SUM}, **item)]}
    with pytest.raises(ModuleFailure) as raised:
        build_specs(params)
    assert raised.value.msg.startswith(message), raised.value.msg


def test_a_checksum_without_url_is_refused():
    with pytest.raises(ModuleFailure, match='checksum: goes with url'):
        build_specs({'pool': 'pool', 'name': 'a', 'checksum': SUM})


def test_a_new_volume_from_a_cached_image_is_imported_and_grown_exactly():
    plan = plan_volume(spec(capacity='64M'), None, {'source': source()})
    assert plan.actions == [('import', 'downloaded from %s' % URL), ('resize', '40 MiB -> 64 MiB')]
    assert summary(plan.after, spec()) == {'exists': True, 'format': 'qcow2', 'capacity': 64 * MIB, 'backing': None,
                                           'url': URL, 'checksum': SUM}


def test_check_mode_without_the_image_predicts_download_import_and_the_capacity_asked():
    plan = plan_volume(spec(capacity='20G', format='qcow2'), None, {'source': source(cached=False, format='qcow2')})
    assert [name for name, _reason in plan.actions] == ['download', 'import', 'resize']
    assert (plan.after['format'], plan.after['capacity']) == ('qcow2', 20 << 30)
    unknown = plan_volume(spec(), None, {'source': source(cached=False)})
    assert [name for name, _reason in unknown.actions] == ['download', 'import']
    assert (unknown.after['format'], unknown.after['capacity']) == (None, None)


def test_a_real_run_lists_the_download_it_made_while_planning():
    plan = plan_volume(spec(), None, {'source': source(download=True)})
    assert plan.actions[0] == ('download', '%s (%s)' % (URL, SUM))


def test_an_image_of_another_format_or_with_a_backing_file_is_refused():
    with pytest.raises(ModuleFailure, match='url %s is qcow2, format asks for raw' % URL):
        plan_volume(spec(format='raw'), None, {'source': source()})
    with pytest.raises(ModuleFailure, match='has a backing file'):
        plan_volume(spec(), None, {'source': source(backing_file='/base.qcow2')})
    with pytest.raises(ModuleFailure, match='smaller than its source'):
        plan_volume(spec(capacity='10M'), None, {'source': source()})


def test_the_same_checksum_is_not_downloaded_again_and_another_url_only_rewrites_the_record():
    vol, facts = existing()
    assert plan_volume(spec(), vol, facts).actions == []
    moved = 'https://mirror.example/debian-12.qcow2'
    plan = plan_volume(spec(url=moved), vol, facts)
    assert [name for name, _reason in plan.actions] == ['record'] and plan.after['url'] == moved
    assert plan.differences == ['url: %s -> %s' % (URL, moved)]


def test_a_changed_checksum_downloads_and_imports_again_unless_the_volume_is_in_use():
    vol, facts = existing(checksum=NEW_SUM, cached=False, format=None)
    plan = plan_volume(spec(checksum=NEW_SUM), vol, facts)
    assert [name for name, _reason in plan.actions] == ['download', 'reimport']
    assert plan.differences == ['url: downloaded with checksum %s, the checksum is now %s' % (SUM, NEW_SUM)]
    assert summary(plan.after, spec())['checksum'] == NEW_SUM
    vol, facts = existing(users={'domains': ['web1'], 'volumes': []}, checksum=NEW_SUM)
    with pytest.raises(ModuleFailure, match="not downloaded and imported again .* in use by domain 'web1'"):
        plan_volume(spec(checksum=NEW_SUM), vol, facts)


def test_download_reasons_for_volumes_made_otherwise_and_checksum_none():
    assert download_reasons(spec(), None, SUM) == ['no record of a download (the volume was made another way)']
    src_record = {'version': 1, 'recipe': {'src': '/srv/x', 'format': 'qcow2'}, 'source': [], 'virtual_size': 1}
    assert download_reasons(spec(), src_record, SUM)
    trusted = url_record(URL, 'none', 1)
    assert download_reasons(spec(checksum='none'), trusted, 'none') == []
    assert download_reasons(spec(checksum='none', url=URL + '?v=2'), trusted, 'none')
    assert download_reasons(spec(), trusted, SUM), 'a checksum given now for a volume downloaded without one'
