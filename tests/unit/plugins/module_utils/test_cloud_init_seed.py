# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NoCloud seed builder: reproducible bytes, readable by an independent ISO reader and by blkid."""

from __future__ import annotations

import io
import subprocess

import pycdlib
import pytest
import yaml

from ansible_collections.virtops.hypervisor.plugins.module_utils import _cloud_init_seed as seed

META = {'instance-id': 'web1-0123456789ab', 'local-hostname': 'web1'}
USER = {'users': [{'name': 'ops', 'ssh_authorized_keys': ['ssh-ed25519 AAAA ops@example']}],
        'packages': ['nginx'], 'chpasswd': {'expire': False}}
NETWORK = {'version': 2, 'ethernets': {'eth0': {'dhcp4': True}}}


def read_back(image):
    """{joliet name: bytes} and the primary names, through pycdlib."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        files = {}
        for child in iso.list_children(joliet_path='/'):
            name = child.file_identifier().decode('utf-16-be')
            if child.is_file():
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, joliet_path='/' + name)
                files[name] = out.getvalue()
        primary = [child.file_identifier().decode() for child in iso.list_children(iso_path='/') if child.is_file()]
        labels = (iso.pvd.volume_identifier.decode().strip(),
                  iso.joliet_vd.volume_identifier.decode('utf-16-be').strip())
        return files, primary, labels
    finally:
        iso.close()


def test_same_input_gives_byte_identical_images():
    first, _files = seed.build_seed(META, USER, NETWORK, 'vendor')
    second, _files = seed.build_seed(dict(reversed(list(META.items()))), dict(USER), dict(NETWORK), 'vendor')
    assert first == second
    assert len(first) % seed.SECTOR == 0


@pytest.mark.parametrize('change', [
    lambda args: args[1].update({'packages': ['apache2']}),
    lambda args: args[0].update({'instance-id': 'other'}),
    lambda args: args.__setitem__(2, None),
])
def test_different_input_gives_different_images(change):
    args = [dict(META), dict(USER), dict(NETWORK)]
    change(args)
    assert seed.build_seed(*args)[0] != seed.build_seed(META, USER, NETWORK)[0]


def test_an_iso_reader_finds_the_exact_names_the_label_and_the_content():
    image, files = seed.build_seed(META, USER, NETWORK, {'runcmd': ['true']})
    found, primary, labels = read_back(image)
    assert found == files
    assert sorted(found) == ['meta-data', 'network-config', 'user-data', 'vendor-data']
    assert primary == ['META_DAT.;1', 'NETWORK_.;1', 'USER_DAT.;1', 'VENDOR_D.;1']
    assert labels == ('cidata', 'cidata')


def test_structured_data_is_json_that_yaml_reads_back_and_user_data_is_cloud_config():
    _image, files = seed.build_seed(META, USER, NETWORK)
    assert files['user-data'].startswith(b'#cloud-config\n')
    assert yaml.safe_load(files['user-data']) == USER
    assert yaml.safe_load(files['meta-data']) == META
    assert yaml.safe_load(files['network-config']) == NETWORK


def test_string_user_data_is_written_as_given_and_optional_files_are_left_out():
    script = '#!/bin/sh\necho hello > /run/hello\n'
    image, files = seed.build_seed(META, script)
    assert files['user-data'] == script.encode()
    assert sorted(read_back(image)[0]) == ['meta-data', 'user-data']


def test_non_ascii_and_empty_files_read_back():
    image, files = seed.build_seed({'instance-id': 'i'}, '', None, {'motd': 'Grüße'})
    assert read_back(image)[0] == files
    assert 'Grüße' in files['vendor-data'].decode()


def test_a_file_larger_than_a_sector_reads_back():
    user = {'write_files': [{'path': '/etc/big', 'content': 'x' * 10000}]}
    image, files = seed.build_seed(META, user)
    assert read_back(image)[0]['user-data'] == files['user-data']


def test_blkid_sees_an_iso9660_filesystem_labelled_cidata(tmp_path):
    path = tmp_path / 'seed.iso'
    path.write_bytes(seed.build_seed(META, USER)[0])
    out = subprocess.run(['blkid', '-p', '-o', 'export', str(path)], check=True, capture_output=True, text=True)
    fields = dict(line.split('=', 1) for line in out.stdout.splitlines() if '=' in line)
    assert (fields['TYPE'], fields['LABEL']) == ('iso9660', 'cidata')


def test_names_that_collide_in_8_3_form_are_refused():
    with pytest.raises(ValueError, match='collide'):
        seed.build_iso({'user-data-a': b'', 'user-data-b': b''})


def test_the_own_reader_reads_what_pycdlib_reads():
    image, files = seed.build_seed(META, USER, NETWORK, {'runcmd': ['true']})
    assert seed.read_iso(image) == files == read_back(image)[0]


def test_the_own_reader_says_none_for_what_is_not_an_iso():
    assert seed.read_iso(b'') is None
    assert seed.read_iso(bytes(40000)) is None
