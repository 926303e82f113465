# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The parsers of _vboxmanage against output captured from the real VBoxManage 7.2 (tests/unit/fixtures/vboxmanage)."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.virtops.hypervisor.plugins.module_utils import _vboxmanage as v

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'vboxmanage'


def fixture(name):
    return (FIXTURES / name).read_text()


def values(name):
    text, missing = v.strip_driver_warning(fixture(name))
    assert missing
    return v.parse_machinereadable(text)


def test_driver_warning_is_removed_and_remembered():
    text, missing = v.strip_driver_warning(fixture('showvminfo_new.txt'))
    assert missing
    assert text.startswith('name="bare"')
    assert v.strip_driver_warning('name="x"\n') == ('name="x"\n', False)


def test_machinereadable_multiline_quoted_values_and_keys():
    parsed = values('showvminfo_rich.txt')
    assert parsed['name'] == 't1-full'
    assert parsed['description'] == 'multi "quoted"\nline'
    assert parsed['SnapshotDescription'] == 'first\nline two'
    assert parsed['SATA-1-0'] == 'emptydrive'
    assert parsed['memory'] == '1024'
    assert 'rec_screen0' not in parsed and ' rec_screen0' not in parsed


def test_error_text_keeps_the_message_only():
    stderr = ('VBoxManage: error: Linked clone can only be created from a snapshot\n'
              'VBoxManage: error: Details: code NS_ERROR_INVALID_ARG (0x80070057), component MachineWrap\n'
              'VBoxManage: error: Context: "CloneTo(...)" at line 757 of file VBoxManageMisc.cpp\n')
    assert v.error_text(stderr) == 'Linked clone can only be created from a snapshot'
    assert v.error_text('  plain text\n') == 'plain text'


def test_ostypes():
    ostypes = v.parse_ostypes(fixture('list_ostypes.txt'))
    assert len(ostypes) == 228
    assert ('Debian_64', 'Debian (64-bit)') in ostypes
    assert ostypes[0] == ('Other', 'Other/Unknown')


def test_ostypes_before_7_1():
    text = 'ID:          Debian_64\nDescription: Debian (64-bit)\nFamily ID:   Linux\n\nID:          Other\nDescription: Other/Unknown\n'
    assert v.parse_ostypes(text) == [('Debian_64', 'Debian (64-bit)'), ('Other', 'Other/Unknown')]


def test_hdds_chain_children_and_users():
    media = dict((medium['uuid'], medium) for medium in v.parse_hdds(fixture('list_hdds_long.txt')))
    base = media['5ad81653-f83d-4437-b07d-498e5fc82110']
    assert base['parent'] is None
    assert base['location'] == '/root/VirtualBox VMs/t1-full/t1-full-disk1.vdi'
    assert base['format'] == 'VDI' and base['virtual_size'] == 64 << 20
    assert base['children'] == ['e5557b03-0e37-445f-857f-a3b54164b1de', '3cddba07-570e-469a-86c4-a0d5d7fcbfd0']
    # Used by t1-full through its snapshot `base`: the snapshot's UUID is not a VM.
    assert base['in_use_by'] == ['1d83e6cc-ee6c-4f99-97c5-19a52fcbcf2e']
    linked = [m for m in media.values() if m['location'].startswith('/root/VirtualBox VMs/t1-linked/')][0]
    assert linked['parent'] == 'a08eaf33-f76e-45d9-9d4c-44b9eb444b4f'
    assert linked['in_use_by'] == ['a85f51d8-db35-4b90-83dc-3ef2cfa8a186']


def test_size():
    assert v.parse_size('64 MBytes') == 64 << 20
    assert v.parse_size('2 GBytes') == 2 << 30
    assert v.parse_size('512 Bytes') == 512
    assert v.parse_size('n/a') is None


def test_import_dry_run():
    found = v.parse_import_dry_run(fixture('import_dry_run.txt'))
    assert found == {'ostype': 'Debian_64', 'name': 't1', 'base_folder': '/root/VirtualBox VMs',
                     'description': 'hello\nworld', 'cpus': 2, 'memory': 1024}


def test_list():
    assert v.parse_list('"web 1" {0e80e6f7-4cd3-4f1f-93c1-63f283320663}\n') == [
        ('web 1', '0e80e6f7-4cd3-4f1f-93c1-63f283320663')]


def test_snapshot_tree():
    snapshots, current = v.parse_snapshots(values('showvminfo_rich.txt'))
    assert current == 'child2'
    assert [(s['name'], s['parent'], s['children'], s['current']) for s in snapshots] == [
        ('base', None, ['child1', 'child2'], False), ('child1', 'base', [], False), ('child2', 'base', [], True)]
    assert snapshots[0]['description'] == 'first\nline two'


def test_parse_snapshots_keeps_duplicate_names_apart():
    # VirtualBox allows two snapshots named s1: each keeps its own place in the tree.
    values = {'SnapshotName': 's1', 'SnapshotUUID': 'u1', 'SnapshotName-1': 's1', 'SnapshotUUID-1': 'u2',
              'SnapshotName-1-1': 'leaf', 'SnapshotUUID-1-1': 'u3', 'CurrentSnapshotName': 'leaf',
              'CurrentSnapshotNode': 'SnapshotName-1-1'}
    snapshots, current = v.parse_snapshots(values)
    assert current == 'leaf'
    assert [(s['uuid'], s['parent'], s['children'], s['current']) for s in snapshots] == [
        ('u1', None, ['s1'], False), ('u2', 's1', ['leaf'], False), ('u3', 's1', [], True)]
