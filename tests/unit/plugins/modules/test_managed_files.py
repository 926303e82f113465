# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""managed_files run through the real ansible CLI against files in a temporary directory."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from virtops_unitlib import JSON_STDOUT_CALLBACK


@pytest.fixture
def run_module(collections_root):
    def run(args, check=False, diff=False):
        ansible = str(Path(sys.executable).with_name('ansible'))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root), ANSIBLE_STDOUT_CALLBACK=JSON_STDOUT_CALLBACK,
                   ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_LOCALHOST_WARNING='false',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
        argv = [ansible, 'localhost', '-e', 'ansible_python_interpreter=%s' % sys.executable,
                '-m', 'virtops.hypervisor.managed_files', '-a', json.dumps(args)]
        argv += ['--check'] if check else []
        argv += ['--diff'] if diff else []
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        return json.loads(proc.stdout)['plays'][0]['tasks'][0]['hosts']['localhost']
    return run


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_files_with_parents_and_then_is_idempotent(run_module, tmp_path):
    conf = tmp_path / 'etc' / 'app.d' / 'app.conf'
    args = {'files': [{'path': str(conf), 'content': 'key = "value"\n', 'mode': '0640'}]}

    result = run_module(args)
    assert result['changed'] is True
    assert result['files'][0]['created'] is True
    assert result['files'][0]['created_directories'] == [str(tmp_path / 'etc'), str(tmp_path / 'etc' / 'app.d')]
    assert conf.read_text() == 'key = "value"\n'
    assert mode_of(conf) == 0o640
    assert mode_of(conf.parent) == 0o755

    again = run_module(args)
    assert again['changed'] is False
    assert again['files'][0]['changed'] is False


def test_check_mode_reports_without_writing_and_diff_shows_content(run_module, tmp_path):
    conf = tmp_path / 'app.conf'
    conf.write_text('old\n')
    args = {'files': [{'path': str(conf), 'content': 'new\n'}]}

    result = run_module(args, check=True, diff=True)
    assert result['changed'] is True
    assert conf.read_text() == 'old\n'
    assert result['diff'] == [{'before_header': str(conf), 'after_header': str(conf), 'before': 'old\n', 'after': 'new\n'}]

    real = run_module(args)
    assert real['changed'] is True and conf.read_text() == 'new\n'
    assert run_module(args, check=True)['changed'] is False


def test_check_mode_on_missing_file_and_directory(run_module, tmp_path):
    conf = tmp_path / 'missing' / 'app.conf'
    result = run_module({'files': [{'path': str(conf), 'content': 'x\n', 'mode': '0644'}]}, check=True)
    assert result['changed'] is True
    assert not (tmp_path / 'missing').exists()


def test_backup_keeps_previous_version_and_no_temporary_file_is_left(run_module, tmp_path):
    conf = tmp_path / 'app.conf'
    conf.write_text('first\n')
    result = run_module({'files': [{'path': str(conf), 'content': 'second\n', 'backup': True}]})
    backup = Path(result['files'][0]['backup_file'])
    assert backup.read_text() == 'first\n'
    assert conf.read_text() == 'second\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['app.conf', backup.name])


def test_mode_only_change_is_reported_in_diff(run_module, tmp_path):
    conf = tmp_path / 'app.conf'
    conf.write_text('same\n')
    conf.chmod(0o600)
    result = run_module({'files': [{'path': str(conf), 'content': 'same\n', 'mode': '0644'}]}, diff=True)
    assert result['changed'] is True
    assert mode_of(conf) == 0o644
    assert result['diff'] == [{'before': {'path': str(conf), 'mode': '0600'}, 'after': {'path': str(conf), 'mode': '0644'}}]


def test_attributes_of_existing_path(run_module, tmp_path):
    node = tmp_path / 'node'
    node.write_text('')
    node.chmod(0o600)
    args = {'attributes': [{'path': str(node), 'mode': '0660'}]}
    assert run_module(args, check=True)['changed'] is True
    assert mode_of(node) == 0o600
    assert run_module(args)['attributes'] == [{'path': str(node), 'changed': True}]
    assert mode_of(node) == 0o660
    assert run_module(args)['changed'] is False


def test_missing_attribute_path_fails_before_any_file_is_written(run_module, tmp_path):
    conf = tmp_path / 'app.conf'
    result = run_module({'files': [{'path': str(conf), 'content': 'x'}],
                         'attributes': [{'path': str(tmp_path / 'no-such-node'), 'mode': '0660'}]})
    assert result.get('failed') is True
    assert 'no-such-node does not exist' in result['msg']
    assert not conf.exists()


@pytest.mark.parametrize('args,message', [
    ({'files': [{'path': 'relative.conf', 'content': ''}]}, "path 'relative.conf' is not absolute"),
    ({'files': [{'path': '/tmp/virtops-dup.conf', 'content': ''}, {'path': '/tmp/virtops-dup.conf', 'content': 'x'}]},
     'paths given more than once: /tmp/virtops-dup.conf'),
])
def test_bad_input_fails_clearly(run_module, args, message):
    result = run_module(args)
    assert result.get('failed') is True
    assert message in result['msg']


def test_directory_in_the_way_fails_and_changes_nothing(run_module, tmp_path):
    (tmp_path / 'app.conf').mkdir()
    other = tmp_path / 'other.conf'
    result = run_module({'files': [{'path': str(other), 'content': 'written first?'},
                                   {'path': str(tmp_path / 'app.conf'), 'content': 'x'}]})
    assert result.get('failed') is True
    assert 'exists and is not a regular file' in result['msg']
    assert not other.exists()


def test_actions_and_differences_name_each_path(run_module, tmp_path):
    conf = tmp_path / 'app.conf'
    node = tmp_path / 'node'
    node.write_text('')
    node.chmod(0o600)
    args = {'files': [{'path': str(conf), 'content': 'x\n'}], 'attributes': [{'path': str(node), 'mode': '0660'}]}

    check = run_module(args, check=True)
    assert check['actions'] == ['write %s' % conf, 'set attributes of %s' % node]
    assert check['differences'] == ['%s: created' % conf, '%s: mode 0600 -> 0660' % node]
    real = run_module(args)
    assert real['actions'] == check['actions'] and real['differences'] == check['differences']
    again = run_module(args)
    assert again['changed'] is False and again['actions'] == [] and again['differences'] == []


def test_unknown_owner_fails_before_any_file_is_written(run_module, tmp_path):
    first = tmp_path / 'first.conf'
    result = run_module({'files': [{'path': str(first), 'content': 'x'},
                                   {'path': str(tmp_path / 'second.conf'), 'content': 'y', 'owner': 'virtops-no-such-user'}]})
    assert result.get('failed') is True and result['changed'] is False
    assert result['msg'] == "owner 'virtops-no-such-user' of %s is no user on the host" % (tmp_path / 'second.conf')
    assert result['failed_object'] == str(tmp_path / 'second.conf')
    assert not first.exists()


def test_bad_mode_fails_before_any_file_is_written(run_module, tmp_path):
    first = tmp_path / 'first.conf'
    result = run_module({'files': [{'path': str(first), 'content': 'x'},
                                   {'path': str(tmp_path / 'second.conf'), 'content': 'y', 'mode': 'rw-everything'}]})
    assert result.get('failed') is True and result['changed'] is False
    assert result['msg'].startswith("mode 'rw-everything' of %s is neither octal" % (tmp_path / 'second.conf'))
    assert not first.exists()


def test_a_write_that_fails_reports_the_files_written_before_it(run_module, tmp_path):
    written = tmp_path / 'written.conf'
    unwritable = '/proc/virtops-no-such-dir/app.conf'  # /proc refuses new directories, even to root
    result = run_module({'files': [{'path': str(written), 'content': 'x\n'}, {'path': unwritable, 'content': 'y'}]})
    assert result.get('failed') is True
    assert result['msg'].startswith('cannot create the directory of %s: ' % unwritable)
    assert result['failed_object'] == unwritable
    assert result['changed'] is True and result['actions'] == ['write %s' % written]
    assert result['files'] == [{'path': str(written), 'changed': True, 'created': True}]
    assert written.read_text() == 'x\n'


def test_check_mode_warns_about_an_unknown_owner_of_a_new_file(run_module, tmp_path):
    """The group or user may come with a package that check mode did not install: warn, do not fail."""
    conf = tmp_path / 'app.conf'
    result = run_module({'files': [{'path': str(conf), 'content': 'x', 'group': 'virtops-no-such-group'}]}, check=True)
    assert result.get('failed') is not True, result
    assert result['changed'] is True and result['actions'] == ['write %s' % conf]
    assert result['warnings'] == ["group 'virtops-no-such-group' of %s is no group on the host; the real run fails "
                                  "unless an earlier task creates it" % conf]
    assert not conf.exists()
