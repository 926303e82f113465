# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's clone_from against libvirt's test driver (test:///default).

The test driver keeps domains, pools and volumes (no files) for the life of the process and supports
createXMLFrom and volumes with a backing store, so clones are made in-process here. Real qcow2 images,
their backing chains and guests booting from them are in tests/integration/test_libvirt_domain_clone.py.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from virtops_unitlib import patch_module_args  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import Result  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain import DomainManager  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import (  # noqa: E402
    MODULE_OPTIONS, build_specs)
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_clone as clone  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain  # noqa: E402

URI = 'test:///default'
POOL = 'default-pool'  # the test driver's dir pool, target /default-pool
_names = itertools.count()


@pytest.fixture(scope='module', autouse=True)
def conn():
    """The test driver forgets everything when its last connection closes: hold one open. Other test modules of
    the process share the driver: the domains, volumes and pools made here are removed afterwards."""
    connection = libvirt.open(URI)
    yield connection
    for dom in connection.listAllDomains(0):
        if dom.name().startswith('clone-'):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)  # the test driver takes no NVRAM flag
    for pool in connection.listAllStoragePools(0):
        for vol in pool.listAllVolumes(0) if pool.isActive() else []:
            if vol.name().startswith('clone-'):
                vol.delete(0)
        if pool.name().startswith('clone-'):
            if pool.isActive():
                pool.destroy()
            pool.undefine()
    connection.close()


@pytest.fixture
def domain(capsys):
    def call(args, check=False, diff=True):
        with patch_module_args(dict(args, uri=URI, _ansible_check_mode=check, _ansible_diff=diff)):
            with pytest.raises(SystemExit):
                libvirt_domain.main()
        return json.loads(capsys.readouterr().out)
    return call


@pytest.fixture
def name():
    return 'clone-%d' % next(_names)


def new_volume(conn, volume, image_format='qcow2', pool=POOL):
    xml = ("<volume><name>%s</name><capacity unit='MiB'>16</capacity><target><format type='%s'/></target></volume>"
           % (volume, image_format))
    return conn.storagePoolLookupByName(pool).createXML(xml, 0)


@pytest.fixture
def source(conn, domain, name):
    """A shut-off domain with a qcow2 disk in the pool, a CD-ROM and an interface; its name."""
    src = name + '-src'
    new_volume(conn, src + '.qcow2')
    result = domain({'name': src, 'memory': 64, 'interfaces': [{'network': 'default'}],
                     'disks': [{'path': '/%s/%s.qcow2' % (POOL, src)}, {'device': 'cdrom', 'path': '/iso/tools.iso'}]})
    assert result['changed'] is True, result
    return src


def volumes(conn, pool=POOL):
    return sorted(vol.name() for vol in conn.storagePoolLookupByName(pool).listAllVolumes(0))


def domains(conn):
    return sorted(dom.name() for dom in conn.listAllDomains(0))


def inactive_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def macs(xml):
    return [elem.get('address') for elem in ET.fromstring(xml).iter('mac')]


def four_ways(domain, args, verify=None):
    """Check run, real run, real rerun, check rerun; returns (check, real)."""
    check = domain(args, check=True)
    assert check['changed'] is True and check.get('failed') is not True, check
    real = domain(args)
    assert real['changed'] is True and real.get('failed') is not True, real
    if verify is not None:
        verify(check, real)
    assert domain(args)['changed'] is False
    assert domain(args, check=True)['changed'] is False
    return check, real


def test_full_clone_copies_the_disks_and_gets_a_new_identity(conn, domain, source, name):
    before = volumes(conn)

    def verify(check, real):
        assert check['actions'] == real['actions'] == ['clone']
        assert check['clone'] == real['clone']
        assert volumes(conn) == sorted(before + [name + '-vda.qcow2'])
    check, real = four_ways(domain, {'name': name, 'memory': 96, 'clone_from': {'name': source}}, verify)
    assert real['clone'] == {
        'source': source, 'linked': False, 'pool': POOL, 'nvram': None, 'shared': ['/iso/tools.iso'],
        'volumes': [{'target': 'vda', 'source': '/%s/%s.qcow2' % (POOL, source), 'pool': POOL,
                     'volume': name + '-vda.qcow2', 'path': '/%s/%s-vda.qcow2' % (POOL, name), 'format': 'qcow2',
                     'backing': None}]}
    xml = inactive_xml(conn, name)
    assert conn.lookupByName(name).UUIDString() != conn.lookupByName(source).UUIDString()
    assert macs(xml) and not set(macs(xml)) & set(macs(inactive_xml(conn, source)))
    assert "<source file='/%s/%s-vda.qcow2'/>" % (POOL, name) in xml
    assert "<source file='/iso/tools.iso'/>" in xml, 'the CD-ROM is shared, not copied'
    assert "<memory unit='KiB'>98304</memory>" in xml, 'the memory option applies on top'
    copied = conn.storagePoolLookupByName(POOL).storageVolLookupByName(name + '-vda.qcow2')
    assert '<backingStore' not in copied.XMLDesc(0)
    predicted = check['diff']['after']
    assert check['diff']['before'] == '' and '<uuid>' not in predicted and '<mac ' not in predicted
    assert "<source file='/%s/%s-vda.qcow2'/>" % (POOL, name) in predicted


def test_linked_clone_is_a_qcow2_overlay_on_the_source_disk(conn, domain, name):
    src = name + '-raw'
    new_volume(conn, src + '.img', 'raw')
    domain({'name': src, 'memory': 64, 'disks': [{'path': '/%s/%s.img' % (POOL, src)}]})
    four_ways(domain, {'name': name, 'clone_from': {'name': src, 'linked': True}})
    overlay = conn.storagePoolLookupByName(POOL).storageVolLookupByName(name + '-vda.qcow2').XMLDesc(0)
    root = ET.fromstring(overlay)
    assert root.find('target/format').get('type') == 'qcow2'
    assert root.findtext('backingStore/path') == '/%s/%s.img' % (POOL, src)
    assert root.find('backingStore/format').get('type') == 'raw'
    disk = ET.fromstring(inactive_xml(conn, name)).find('devices/disk')
    assert disk.find('driver').get('type') == 'qcow2'
    assert disk.find('source').get('file') == '/%s/%s-vda.qcow2' % (POOL, name)


def test_a_clone_is_made_once_even_after_the_source_changed_or_went(conn, domain, source, name):
    args = {'name': name, 'clone_from': {'name': source}}
    assert domain(args)['changed'] is True
    domain({'name': source, 'memory': 128, 'state': 'running'})
    assert domain(args)['changed'] is False and domain(args, check=True)['changed'] is False
    domain({'name': source, 'state': 'absent'})
    rerun = domain(args)
    assert rerun['changed'] is False and 'clone' not in rerun


def test_options_of_the_item_converge_on_an_existing_clone(conn, domain, source, name):
    domain({'name': name, 'clone_from': {'name': source}})
    changed = domain({'name': name, 'vcpus': 2, 'clone_from': {'name': source}})
    assert changed['changed'] is True and changed['actions'] == ['update'] and changed['differences'] == ['vcpus']


def test_volume_of_a_pool_gives_a_volume_disk_and_the_pool_can_be_chosen(conn, domain, name):
    """Linked: the test driver's createXMLFrom finds the source volume only in the target pool (qemu:///system
    copies between pools)."""
    other = name + '-pool'
    pool = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>/%s</path></target></pool>"
                                     % (other, other), 0)
    pool.create(0)
    src = name + '-vol'
    new_volume(conn, src + '.qcow2')
    domain({'name': src, 'memory': 64, 'disks': [{'volume': {'pool': POOL, 'name': src + '.qcow2'}}]})
    result = domain({'name': name, 'clone_from': {'name': src, 'pool': other, 'linked': True}})
    assert result['clone']['volumes'][0]['path'] == '/%s/%s-vda.qcow2' % (other, name)
    assert volumes(conn, other) == [name + '-vda.qcow2']
    source = ET.fromstring(inactive_xml(conn, name)).find('devices/disk/source')
    assert source.attrib == {'pool': other, 'volume': name + '-vda.qcow2'}


def test_uefi_clone_gets_its_own_nvram_copy(conn, domain, name, tmp_path):
    src = name + '-uefi'
    new_volume(conn, src + '.qcow2')
    vars_file = tmp_path / (src + '_VARS.fd')
    vars_file.write_bytes(b'efi variables of the source')
    vars_file.chmod(0o600)
    conn.defineXML("""<domain type='test'><name>%s</name><memory>65536</memory>
      <os><type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
      <nvram>%s</nvram></os>
      <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/%s/%s.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>"""
                   % (src, vars_file, POOL, src))
    copied = tmp_path / (name + '_VARS.fd')
    args = {'name': name, 'clone_from': {'name': src}}

    def verify(check, real):
        assert check['clone']['nvram'] == real['clone']['nvram'] == {
            'source': str(vars_file), 'path': str(copied), 'copied': True}
        assert '<nvram>%s</nvram>' % copied in check['diff']['after']
    domain(args, check=True)
    assert not copied.exists(), 'check mode copies nothing'
    four_ways(domain, args, verify)
    assert copied.read_bytes() == b'efi variables of the source' and oct(copied.stat().st_mode & 0o777) == '0o600'
    assert '<nvram>%s</nvram>' % copied in inactive_xml(conn, name)
    assert "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>" in inactive_xml(conn, name)

    taken = domain({'name': name + '-b', 'clone_from': {'name': src}}, check=True)
    assert taken['changed'] is True  # a second clone of the same source gets a name of its own
    (tmp_path / (name + '-c_VARS.fd')).write_bytes(b'')
    refused = domain({'name': name + '-c', 'clone_from': {'name': src}}, check=True)
    assert refused['msg'] == ("clone_from: the NVRAM file %s that the clone would get already exists; remove it, or "
                              "give the clone another name" % (tmp_path / (name + '-c_VARS.fd')))


def test_nvram_not_yet_made_is_left_to_libvirt(conn, domain, name, tmp_path):
    src = name + '-fresh'
    conn.defineXML("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type>"
                   "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
                   "<nvram>%s/%s_VARS.fd</nvram></os></domain>" % (src, tmp_path, src))
    result = domain({'name': name, 'clone_from': {'name': src}})
    assert result['clone']['nvram'] == {'source': '%s/%s_VARS.fd' % (tmp_path, src),
                                        'path': '%s/%s_VARS.fd' % (tmp_path, name), 'copied': False}
    assert result['clone']['volumes'] == [] and result['clone']['pool'] is None
    assert not (tmp_path / (name + '_VARS.fd')).exists()


@pytest.mark.parametrize('how, state', [('running', 'running'), ('paused', 'paused')])
def test_active_source_is_refused_and_nothing_changes(conn, domain, source, name, how, state):
    domain({'name': source, 'state': how})
    before = volumes(conn), domains(conn)
    for check in (True, False):
        result = domain({'name': name, 'clone_from': {'name': source}}, check=check)
        assert result['failed'] is True and result['changed'] is False
        assert result['msg'] == ("clone_from: domain '%s' to clone is %s; shut it down first: its disks must not "
                                 "change while they are copied" % (source, state))
        assert result['failed_object'] == "domain '%s'" % name
    assert (volumes(conn), domains(conn)) == before


def test_source_with_a_saved_state_is_refused(conn, domain, source, name):
    domain({'name': source, 'state': 'running'})
    domain({'name': source, 'state': 'saved'})
    result = domain({'name': name, 'clone_from': {'name': source}})
    assert result['msg'].startswith("clone_from: domain '%s' to clone has a saved state (managed save)" % source)


def test_bad_clone_in_a_batch_changes_nothing(conn, domain, source, name):
    before = volumes(conn), domains(conn)
    items = [{'name': name, 'clone_from': {'name': source}, 'state': 'running'},
             {'name': name + '-b', 'clone_from': {'name': 'no-such-source'}}]
    for check in (True, False):
        result = domain({'domains': items}, check=check)
        assert result['failed'] is True and result['changed'] is False
        assert result['msg'] == "domains[1].clone_from: domain 'no-such-source' to clone does not exist at %s" % URI
    assert (volumes(conn), domains(conn)) == before


def test_batch_of_clones_with_options_each(conn, domain, source, name):
    items = [{'name': '%s-%d' % (name, index), 'memory': 64 + 32 * index, 'clone_from': {'name': source}}
             for index in range(3)]
    result = domain({'domains': items, 'state': 'running'})
    assert [item['actions'] for item in result['domains']] == [['clone', 'start']] * 3
    assert [dx.summarize(dx.parse(inactive_xml(conn, item['name'])))['memory_mib'] for item in items] == [64, 96, 128]
    assert domain({'domains': items, 'state': 'running'})['changed'] is False


def test_disk_the_clone_would_create_already_exists(conn, domain, source, name):
    new_volume(conn, name + '-vda.qcow2')
    result = domain({'name': name, 'clone_from': {'name': source}}, check=True)
    assert result['msg'] == ("clone_from: volume '%s-vda.qcow2' (/%s/%s-vda.qcow2) that the clone would create for "
                             "disk vda already exists in pool '%s'; remove it, or give the clone another name"
                             % (name, POOL, name, POOL))
    assert name not in domains(conn)


@pytest.mark.parametrize('disk, message', [
    ("<disk type='file' device='disk'><source file='/guest/%(src)s.img'/><target dev='vda' bus='virtio'/></disk>",
     "clone_from: disk vda of domain '%(src)s' (/guest/%(src)s.img) is not a volume of an active storage pool; define "
     "and start a dir pool with target /guest (virsh pool-define-as NAME dir --target /guest) so that libvirt can "
     "copy it"),
    ("<disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vdb' bus='virtio'/></disk>",
     "clone_from: disk vdb of domain '%(src)s' (/dev/sdz) is not a volume of an active storage pool; a block device "
     "outside a storage pool is not cloned: put it into a logical or disk pool, or detach it from the source first"),
    ("<disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='nbd' name='x'>"
     "<host name='localhost' port='10809'/></source><target dev='vdc' bus='virtio'/></disk>",
     "clone_from: disk vdc of domain '%(src)s' is of type network, which cannot be cloned; only file, block and "
     "volume disks in a storage pool can"),
], ids=['file-outside-pools', 'block-device', 'network-disk'])
def test_disk_libvirt_cannot_copy_is_refused(conn, domain, name, disk, message):
    src = name + '-odd'
    conn.defineXML("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os>"
                   "<devices>%s</devices></domain>" % (src, disk % {'src': src}))
    result = domain({'name': name, 'clone_from': {'name': src}}, check=True)
    assert result['failed'] is True and result['msg'] == message % {'src': src}


def test_read_only_and_shareable_disks_are_shared(conn, domain, name):
    src = name + '-ro'
    conn.defineXML("<domain type='test'><name>%s</name><memory>65536</memory><os><type>hvm</type></os><devices>"
                   "<disk type='file' device='disk'><source file='/data/ro.img'/><target dev='vda' bus='virtio'/>"
                   "<readonly/></disk><disk type='block' device='disk'><source dev='/dev/shared'/>"
                   "<target dev='vdb' bus='virtio'/><shareable/></disk></devices></domain>" % src)
    result = domain({'name': name, 'clone_from': {'name': src}})
    assert result['clone']['shared'] == ['/data/ro.img', '/dev/shared'] and result['clone']['volumes'] == []


@pytest.mark.parametrize('pool_xml, message', [
    (None, "clone_from: storage pool '%(pool)s' does not exist"),
    ("<pool type='dir'><name>%(pool)s</name><target><path>/%(pool)s</path></target></pool>",
     "clone_from: storage pool '%(pool)s' is not active; start it first"),
    ("<pool type='logical'><name>%(pool)s</name><target><path>/dev/%(pool)s</path></target></pool>",
     "clone_from: storage pool '%(pool)s' is of type logical; clones go into pools of type dir, fs, netfs"),
], ids=['missing', 'inactive', 'logical'])
def test_target_pool_that_cannot_take_the_clone_is_refused(conn, domain, source, name, pool_xml, message):
    pool = name + '-target'
    if pool_xml:
        defined = conn.storagePoolDefineXML(pool_xml % {'pool': pool}, 0)
        if 'logical' in pool_xml:
            defined.create(0)
    for check in (True, False):
        result = domain({'name': name, 'clone_from': {'name': source, 'pool': pool}}, check=check)
        assert result['failed'] is True and result['msg'] == message % {'pool': pool}
    assert name not in domains(conn)


def test_refused_definition_removes_the_volumes_it_made(conn, domain, source, name):
    before = volumes(conn)
    result = domain({'name': name, 'domain_type': 'no-such-hypervisor', 'clone_from': {'name': source}})
    assert result['failed'] is True and result['changed'] is False and result['actions'] == []
    assert result['msg'].startswith("libvirt refused the definition of domain '%s'" % name)
    assert volumes(conn) == before and name not in domains(conn)


@pytest.mark.parametrize('args, message', [
    ({'xml': "<domain type='test'><name>x</name></domain>", 'clone_from': {'name': 'y'}},
     'xml and clone_from are mutually exclusive; a clone starts from the definition of its source (structured '
     'options apply on top of it)'),
    ({'name': 'x', 'clone_from': {'name': 'y'}, 'disks': [{'path': '/a.qcow2'}]},
     'disks cannot be given with clone_from: a clone gets copies of the disks of its source; change its disks in a '
     'later task, once the clone exists'),
    ({'name': 'x', 'clone_from': {'name': 'x'}}, "clone_from: name 'x' is the domain itself; name the domain to clone"),
    ({'domains': [{'name': 'a'}, {'name': 'x', 'clone_from': {'name': 'x'}}]},
     "domains[1].clone_from: name 'x' is the domain itself; name the domain to clone"),
    ({'domains': [{'name': 'a'}], 'clone_from': {'name': 'x'}},
     'parameters are mutually exclusive: domains|clone_from'),
])
def test_bad_clone_input_is_refused_with_its_name(domain, args, message):
    result = domain(args)
    assert result['failed'] is True and result['msg'] == message


def test_clone_definition_is_the_source_with_a_new_identity():
    """The pure step: name, no UUID (nor in sysinfo), no MAC or tap device, disks on the new volumes."""
    source = dx.parse("""<domain type='kvm'><name>src</name><uuid>00000000-0000-0000-0000-000000000001</uuid>
      <sysinfo type='smbios'><system><entry name='uuid'>00000000-0000-0000-0000-000000000001</entry>
      <entry name='serial'>s1</entry></system></sysinfo>
      <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/p/src.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/p/base.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/></disk>
      <interface type='bridge'><mac address='52:54:00:00:00:01'/><source bridge='br0'/><target dev='tap-src'/>
      <model type='virtio'/></interface></devices></domain>""")

    class Pool(object):
        def name(self):
            return 'images'
    copy = clone.DiskCopy('vda', None, '/p/src.qcow2', 'qcow2', Pool(), '/var/lib/images', 'new-vda.qcow2',
                          linked=True, as_volume=False)
    root = clone.clone_definition(source, 'new', {'vda': copy})
    text = dx.to_string(root)
    assert root.findtext('name') == 'new' and '<uuid>' not in text and "name='uuid'" not in text
    assert "<entry name='serial'>s1</entry>" in text
    assert '<mac ' not in text and 'tap-src' not in text and "<source bridge='br0'/>" in text
    assert "<source file='/var/lib/images/new-vda.qcow2'/>" in text and 'backingStore' not in text
    assert dx.parse(dx.to_string(source)).findtext('uuid'), 'the source definition is left as it was'
    volume = ET.fromstring(copy.volume_xml(1 << 30))
    assert volume.findtext('capacity') == str(1 << 30) and volume.findtext('backingStore/path') == '/p/src.qcow2'


def test_run_overtaken_by_another_making_the_same_clone_converges(conn, domain, source, name):
    """The other run makes the clone after this run planned it: this run's volume copy fails (the volume
    exists), it reads the domain again, finds the clone made and changes nothing (the other run's volume stays)."""
    asked = {'name': name, 'memory': 96, 'clone_from': {'name': source}}

    class Overtaken(DomainManager):
        overtaken = False

        def _define(self, item):
            if not self.overtaken:
                self.overtaken = True
                assert domain(asked)['actions'] == ['clone']
            return super()._define(item)
    result = Result()
    with patch_module_args(dict(asked, uri=URI)):
        specs, batch = build_specs(AnsibleModule(argument_spec=MODULE_OPTIONS).params)
    Overtaken(conn, URI, result).converge(specs, batch)
    assert result.as_dict()['actions'] == [] and result.as_dict()['changed'] is False
    assert name + '-vda.qcow2' in volumes(conn) and name in domains(conn)
