# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the checkout importable as ansible_collections.virtops.hypervisor, and build fake hosts.

Under ``ansible-test units`` the collection is already importable; under plain pytest a
temporary ``ansible_collections/virtops/hypervisor`` symlink to the checkout is put on sys.path.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / 'fixtures'


def _collections_root():
    try:
        module = importlib.import_module('ansible_collections.virtops.hypervisor')
        return None, Path(list(module.__path__)[0]).parents[2]
    except ImportError:
        pass
    tmp = tempfile.mkdtemp(prefix='virtops-collections-')
    os.makedirs(os.path.join(tmp, 'ansible_collections', 'virtops'))
    os.symlink(str(REPO), os.path.join(tmp, 'ansible_collections', 'virtops', 'hypervisor'))
    sys.path.insert(0, tmp)
    importlib.invalidate_caches()
    return tmp, Path(tmp)


_CREATED, COLLECTIONS_ROOT = _collections_root()


def pytest_unconfigure(config):
    if _CREATED:
        shutil.rmtree(_CREATED)  # removes the symlink, not the checkout


@pytest.fixture(scope='session')
def collections_root():
    """Directory to use as ANSIBLE_COLLECTIONS_PATH for ansible CLI runs."""
    return COLLECTIONS_ROOT


@pytest.fixture
def fake_host(tmp_path):
    """Build a fake root filesystem with the files virt_host_info reads; returns its path.

    modules: text of /proc/modules (None: no /proc/modules, as on kernels without module support)
    sys_modules: {name: nested parameter value or None} directories under /sys/module
    dev_kvm: 'file' (an openable stand-in), 'dir' (open fails with EISDIR) or None
    """
    def build(cpuinfo_name=None, modules=None, sys_modules=None, dev_kvm='file', dev_kvm_mode=0o660,
              vboxdrv=False, iommu_groups=0, iommu_class=(), cmdline='BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 ro quiet'):
        root = tmp_path / 'root'
        for sub in ('proc', 'dev', 'sys/module', 'sys/kernel/iommu_groups', 'sys/class/iommu'):
            (root / sub).mkdir(parents=True, exist_ok=True)
        if cpuinfo_name:
            (root / 'proc/cpuinfo').write_text((FIXTURES / 'cpuinfo' / cpuinfo_name).read_text())
        if modules is not None:
            (root / 'proc/modules').write_text(modules)
        (root / 'proc/cmdline').write_text(cmdline + '\n')
        for name, nested in (sys_modules or {}).items():
            params = root / 'sys/module' / name / 'parameters'
            params.mkdir(parents=True)
            if nested is not None:
                (params / 'nested').write_text(nested + '\n')
        if dev_kvm == 'file':
            (root / 'dev/kvm').write_text('')
            (root / 'dev/kvm').chmod(dev_kvm_mode)
        elif dev_kvm == 'dir':
            (root / 'dev/kvm').mkdir()
        if vboxdrv:
            (root / 'dev/vboxdrv').write_text('')
        for group in range(iommu_groups):
            (root / 'sys/kernel/iommu_groups' / str(group) / 'devices').mkdir(parents=True)
        for name in iommu_class:
            (root / 'sys/class/iommu' / name).mkdir()
        return str(root)
    return build


@pytest.fixture(scope='module')
def libvirt_test_conn():
    """A connection to libvirt's test driver (test:///default), held open for the test module: the driver
    forgets the domains, networks and pools tests made when its last connection closes."""
    import libvirt  # requirements-dev.txt installs libvirt-python; only the tests that use the driver need it
    connection = libvirt.open('test:///default')
    yield connection
    connection.close()
