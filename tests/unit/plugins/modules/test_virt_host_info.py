# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from virtops_unitlib import JSON_STDOUT_CALLBACK, patch_module_args
from ansible_collections.virtops.hypervisor.plugins.module_utils import _cpu, _os_release
from ansible_collections.virtops.hypervisor.plugins.modules import virt_host_info

BIN = Path(sys.executable).parent
CPUINFO = Path('/proc/cpuinfo')


def run_cli(collections_root, tmp_path, *args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root), ANSIBLE_LOCAL_TEMP=str(tmp_path),
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_STDOUT_CALLBACK=JSON_STDOUT_CALLBACK, ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([str(BIN / args[0])] + list(args[1:]), env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope='module')
def cli_result(collections_root, tmp_path_factory):
    """The module run for real on this machine, through ansible's own module packaging, in check mode."""
    out = run_cli(collections_root, tmp_path_factory.mktemp('ansible'), 'ansible', 'localhost', '-i', 'localhost,', '-c', 'local',
                  '-e', 'ansible_python_interpreter=' + sys.executable, '-m', 'virtops.hypervisor.virt_host_info', '--check')
    return json.loads(out)['plays'][0]['tasks'][0]['hosts']['localhost']


def _this_machine_has_paravirtual_kvm_only():
    if not CPUINFO.exists() or platform.machine() != 'x86_64':
        return False
    return os.path.exists('/dev/kvm') and not re.search(r'\b(vmx|svm)\b', CPUINFO.read_text())


TYPES = {'str': str, 'int': int, 'bool': bool, 'dict': dict, 'list': list}


def doc_mismatches(spec, value, path=''):
    """Fields returned but not documented, documented but not returned, or of another type than documented."""
    problems = []
    for name in sorted(set(spec) | set(value)):
        where = path + name
        if name not in spec or name not in value:
            problems.append(('undocumented: ' if name not in spec else 'not returned: ') + where)
            continue
        field, actual = spec[name], value[name]
        if actual is not None and not isinstance(actual, TYPES[field['type']]):
            problems.append('%s is %s, documented as %s' % (where, type(actual).__name__, field['type']))
        if 'contains' in field:
            for item in actual if isinstance(actual, list) else [actual]:
                problems += doc_mismatches(field['contains'], item, where + '.')
    return problems


RETURN_SPEC = yaml.safe_load(virt_host_info.RETURN)


def test_main_on_this_machine_returns_what_is_documented(capsys):
    with patch_module_args({'_ansible_check_mode': True}):
        with pytest.raises(SystemExit) as exc:
            virt_host_info.main()
    assert exc.value.code == 0
    result = json.loads(capsys.readouterr().out)
    assert result['changed'] is False
    assert doc_mismatches(RETURN_SPEC, {'virt_host': result['virt_host']}) == []


def test_documented_fields_on_a_kvm_host(fake_host):
    root = fake_host('intel_i5-7200u_vmx.txt', modules='kvm_intel 380928 0 - Live 0x0\nkvm 1142784 1 kvm_intel, Live 0x0\n',
                     sys_modules={'kvm_intel': 'Y'}, iommu_groups=2)
    host = _cpu.gather(root, machine='x86_64', system='Linux')
    host['os'] = _os_release.gather_os(root)  # as main() does
    assert host['verdict'] == 'kvm'
    assert doc_mismatches(RETURN_SPEC, {'virt_host': host}) == []


def test_main_rejects_options(capsys):
    with patch_module_args({'proc_root': '/tmp'}):
        with pytest.raises(SystemExit) as exc:
            virt_host_info.main()
    assert exc.value.code == 1
    assert 'Unsupported parameters' in json.loads(capsys.readouterr().out)['msg']


def test_cli_run_on_this_machine(cli_result):
    host = cli_result['virt_host']
    assert cli_result['changed'] is False
    assert host['verdict'] in ('kvm', 'emulation', 'none')
    assert host['reason']
    assert host['architecture'] == platform.machine()
    assert host['kvm_device']['present'] is os.path.exists('/dev/kvm')
    if CPUINFO.exists():
        assert host['cpu']['logical_cpus'] == len(re.findall(r'^processor\s*:', CPUINFO.read_text(), re.M))


@pytest.mark.skipif(not _this_machine_has_paravirtual_kvm_only(), reason='needs an x86_64 host with /dev/kvm but no vmx/svm')
def test_cli_verdict_on_paravirtual_kvm_host_is_emulation(cli_result):
    host = cli_result['virt_host']
    assert host['verdict'] == 'emulation'
    assert host['kvm_device']['present'] is True
    assert host['hardware_virtualization'] == {'vmx': False, 'svm': False, 'cpus_with_hw_virt': 0}
    assert 'hardware virtualization is not exposed' in host['reason']
    assert "use domain type 'qemu'" in host['reason']
    assert host['virtualbox_possible'] is False


def test_ansible_doc_renders_attributes(collections_root, tmp_path):
    doc = json.loads(run_cli(collections_root, tmp_path, 'ansible-doc', '-t', 'module', '--json', 'virtops.hypervisor.virt_host_info'))
    doc = doc['virtops.hypervisor.virt_host_info']
    attributes = doc['doc']['attributes']
    assert attributes['check_mode']['support'] == 'full'
    assert attributes['diff_mode']['support'] == 'N/A'
    assert attributes['platform']['platforms'] == 'linux'
    assert doc['return']['virt_host']['contains']['verdict']['choices'] == ['kvm', 'emulation', 'none']
