# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's tags, metadata and cloud_init against libvirt's test driver (test:///default).

The test driver cannot upload to volumes: seeds here are files beside a disk no pool holds (in the
test's tmp_path). Seeds in pool volumes are covered by tests/integration/test_libvirt_domain_cloud_init.py.
"""

from __future__ import annotations

import itertools
import json
import os
import xml.etree.ElementTree as ET

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from virtops_unitlib import on_test_driver  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils import _cloud_init_seed as seed  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as md  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain, libvirt_domain_info  # noqa: E402

URI = 'test:///default'
_names = itertools.count()
SECRET = 'Sup3r-S3cret-Passw0rd'


# The test driver forgets what the tests made when its last connection closes: the fixture holds one open.
pytestmark = pytest.mark.usefixtures('libvirt_test_conn')


@pytest.fixture
def domain(capsys):
    return on_test_driver(libvirt_domain, capsys)


@pytest.fixture
def info(capsys):
    return on_test_driver(libvirt_domain_info, capsys)


@pytest.fixture
def name():
    return 'unit-ci-%d' % next(_names)


def lookup(name):
    return libvirt.open(URI).lookupByName(name)


def stored_metadata(name, live=False):
    flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
    return md.describe(ET.fromstring(lookup(name).XMLDesc(flags)))


def structured(name, disk_dir='/var/lib/libvirt/images', **extra):
    return dict({'name': name, 'memory': 128, 'vcpus': 1,
                 'disks': [{'path': '%s/%s.qcow2' % (disk_dir, name)}]}, **extra)


def four_ways(domain, args, verify=None):
    """Check run changes nothing but reports the change; the real run makes it; both reruns are no-ops."""
    check = domain(args, check=True)
    assert check['changed'] is True, check
    real = domain(args)
    assert real['changed'] is True, real
    assert real['actions'] == check['actions']
    if verify:
        verify(real)
    rerun = domain(args)
    assert rerun['changed'] is False, rerun
    check_rerun = domain(args, check=True)
    assert check_rerun['changed'] is False, check_rerun
    return check, real


# --- tags and metadata -------------------------------------------------------------------------

def test_tags_and_metadata_four_ways_and_shown_by_the_info_module(domain, info, name):
    domain(structured(name))
    args = structured(name, tags=['web', 'zone-a', 'web'], metadata={'role': 'db', 'rack': 7})
    check, real = four_ways(domain, args)
    assert stored_metadata(name) == {'tags': ['web', 'zone-a'], 'metadata': {'rack': '7', 'role': 'db'}}
    assert check['differences'] == ['metadata', 'tags'] == real['differences']
    for result in (check, real):
        assert 'virtops:tag name=' in result['diff']['after'] and 'zone-a' in result['diff']['after']
    found = info(name=name)['domains'][0]
    assert (found['tags'], found['metadata']) == (['web', 'zone-a'], {'rack': '7', 'role': 'db'})


def test_tags_alone_change_an_existing_domain_and_leave_metadata(domain, name):
    domain(structured(name, metadata={'role': 'db'}))
    four_ways(domain, {'name': name, 'tags': ['blue']})
    assert stored_metadata(name) == {'tags': ['blue'], 'metadata': {'role': 'db'}}
    four_ways(domain, {'name': name, 'tags': [], 'metadata': {}})
    assert '<metadata' not in lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_tags_alone_do_not_define_a_new_domain(domain, name):
    result = domain({'name': name, 'tags': ['web']})
    assert result['failed'] and 'does not exist' in result['msg']


def test_a_running_domain_gets_its_tags_live_without_a_restart(domain, name):
    domain(structured(name, state='running'))
    _check, real = four_ways(domain, structured(name, state='running', tags=['live']))
    assert real['actions'] == ['update', 'update_live_metadata']
    assert real['restart_required'] is False
    assert stored_metadata(name, live=True)['tags'] == ['live']


def test_tags_combine_with_full_xml_and_survive_a_redefinition_from_it(domain, name):
    xml = ("<domain type='test'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
           "<os><type>hvm</type></os></domain>" % name)
    four_ways(domain, {'xml': xml, 'tags': ['from-xml']})
    assert stored_metadata(name)['tags'] == ['from-xml']
    assert domain({'xml': xml})['changed'] is False  # the xml without tags keeps them
    _check, real = four_ways(domain, {'xml': xml, 'tags': []})
    assert real['differences'] == ["tags: [], not ['from-xml']"]


def test_other_namespaces_in_metadata_are_kept(domain, name):
    xml = ("<domain type='test'><name>%s</name><metadata><app:x xmlns:app='urn:example:app' a='1'/></metadata>"
           "<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>" % name)
    domain({'xml': xml})
    four_ways(domain, {'name': name, 'tags': ['t'], 'memory': 256})
    stored = lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert 'urn:example:app' in stored and stored_metadata(name)['tags'] == ['t']


@pytest.mark.parametrize('args, message', [
    ({'tags': ['ok', ' spaced']}, "tags[1]: ' spaced' is not a tag"),
    ({'metadata': {'role': ['a']}}, 'metadata.role: must be a string, not list'),
    ({'domains': [{'name': 'x'}, {'name': 'y', 'metadata': {'k': {'a': 1}}}]}, 'domains[1].metadata.k: must be'),
])
def test_bad_tags_and_metadata_name_the_item(domain, name, args, message):
    if 'domains' not in args:
        args = dict(structured(name), **args)
    result = domain(args)
    assert result['failed'] and message in result['msg'], result['msg']


# --- cloud_init --------------------------------------------------------------------------------

def cloud_init(**extra):
    return dict({'user_data': {'users': [{'name': 'ops', 'passwd': SECRET}], 'package_update': True},
                 'meta_data': {'zone': 'a'},
                 'network_config': {'version': 2, 'ethernets': {'eth0': {'dhcp4': True}}}}, **extra)


def seed_path(tmp_path, name):
    return str(tmp_path / ('%s-cidata.iso' % name))


def seed_disks(name):
    root = ET.fromstring(lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return [disk for disk in root.iter('disk') if disk.get('device') == 'cdrom']


def test_seed_beside_the_first_disk_four_ways(domain, name, tmp_path):
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init())
    path = seed_path(tmp_path, name)

    def verify(real):
        assert os.stat(path).st_mode & 0o777 == 0o644
        files = seed.read_iso(open(path, 'rb').read())
        assert sorted(files) == ['meta-data', 'network-config', 'user-data']
        assert json.loads(files['meta-data']) == {'instance-id': real['cloud_init']['instance_id'],
                                                  'local-hostname': name, 'zone': 'a'}
        assert real['cloud_init']['path'] == path and real['cloud_init']['written'] is True

    check, real = four_ways(domain, args, verify)
    assert check['actions'] == ['create_seed', 'define'] and check['cloud_init']['written'] is True
    [cdrom] = seed_disks(name)
    assert cdrom.find('source').get('file') == path and cdrom.find('readonly') is not None
    assert cdrom.find('target').get('dev') == 'hda' and cdrom.find('target').get('bus') == 'ide'
    assert real['cloud_init']['instance_id'].startswith(name + '-')


def test_user_data_never_shows_in_output_or_diff(domain, name, tmp_path):
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init())
    for result in (domain(args, check=True), domain(args)):
        text = json.dumps(result)
        assert SECRET not in text
        [seed_diff] = [entry for entry in result['diff'] if 'cloud-init seed' in entry.get('after_header', '')]
        assert '"dhcp4": true' in seed_diff['after'] and '# user-data\nsha256:' in seed_diff['after']


@pytest.mark.parametrize('batch', [False, True])
def test_strings_of_user_data_are_not_masked_elsewhere_and_the_invocation_shows_a_hash(domain, name, tmp_path, batch):
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(), tags=['ops-team'])
    result = domain({'domains': [args]} if batch else args)
    text = json.dumps(result)
    assert SECRET not in text and '********' not in text
    assert 'ops-team' in text
    given = result['invocation']['module_args']
    given = given['domains'][0] if batch else given
    user_data = seed.document(cloud_init()['user_data'], cloud_config=True)
    assert given['cloud_init']['user_data'] == seed.digest(user_data)
    assert given['cloud_init']['meta_data'] == {'zone': 'a'}


def test_changed_user_data_rebuilds_the_seed_with_a_new_instance_id(domain, name, tmp_path):
    domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init()))
    first = open(seed_path(tmp_path, name), 'rb').read()
    changed = cloud_init(user_data='#cloud-config\npackages: [nginx]\n')
    check, real = four_ways(domain, structured(name, disk_dir=str(tmp_path), cloud_init=changed))
    assert real['actions'] == ['update_seed', 'update'] and real['differences'] == ['cloud_init']
    seed_diff, definition_diff = real['diff']
    assert 'cloud-init seed' in seed_diff['after_header']
    assert 'virtops:cloud-init seed="%s"' % real['cloud_init']['sha256'] in definition_diff['after']
    assert 'virtops:cloud-init seed="%s"' % seed.digest(first) in definition_diff['before']
    assert seed_diff['before'].count('sha256:') == seed_diff['after'].count('sha256:') == 1
    assert seed_diff['before'] != seed_diff['after'] and '"zone": "a"' in seed_diff['before']
    second = open(seed_path(tmp_path, name), 'rb').read()
    assert first != second
    assert seed.read_iso(second)['user-data'] == b'#cloud-config\npackages: [nginx]\n'
    assert json.loads(seed.read_iso(first)['meta-data'])['instance-id'] != real['cloud_init']['instance_id']


def test_a_rewritten_seed_of_a_running_domain_asks_for_a_restart_until_it_restarts(domain, name, tmp_path):
    domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(), state='running'))
    booted_with = md.seed_digest(ET.fromstring(lookup(name).XMLDesc(0)))
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(meta_data={'zone': 'b'}), state='running')
    check, real = four_ways(domain, args)
    for result in (check, real):
        assert result['restart_required'] is True and result['restart_reasons'] == ['cloud_init']
    for later in (domain(args), domain(args, check=True), domain({'name': name})):
        assert later['changed'] is False and later['restart_required'] is True, later
        assert later['restart_reasons'] == ['cloud_init']
    assert md.seed_digest(ET.fromstring(lookup(name).XMLDesc(0))) == booted_with, 'the live XML keeps its digest'
    restart = dict(args, apply='restart', shutdown_timeout=1, force=True)
    check = domain(restart, check=True)
    assert check['actions'] == ['restart'] and check['restart_required'] is False
    real = domain(restart)
    assert real['actions'] == ['restart'] and real['restarted'] is True and real['restart_required'] is False
    for later in (domain(restart), domain(restart, check=True)):
        assert later['changed'] is False and later['restart_required'] is False, later
    assert md.seed_digest(ET.fromstring(lookup(name).XMLDesc(0))) == real['cloud_init']['sha256']


def test_tags_set_live_keep_the_digest_the_guest_booted_with(domain, name, tmp_path):
    domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(), state='running'))
    booted_with = md.seed_digest(ET.fromstring(lookup(name).XMLDesc(0)))
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(meta_data={'zone': 'd'}), state='running',
                      tags=['live'])
    _check, real = four_ways(domain, args)
    assert real['actions'] == ['update_seed', 'update', 'update_live_metadata']
    live = ET.fromstring(lookup(name).XMLDesc(0))
    assert md.describe(live)['tags'] == ['live'] and md.seed_digest(live) == booted_with
    assert stored_metadata(name) == {'tags': ['live'], 'metadata': {}}
    assert md.seed_digest(ET.fromstring(lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))) == \
        real['cloud_init']['sha256']
    assert domain(args)['restart_required'] is True


def test_a_domain_defined_before_seed_digests_gets_one_without_a_restart(domain, name, tmp_path):
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(), state='running', tags=['old'])
    domain(args)
    dom = lookup(name)
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    old_element = md.element(['old'], {})  # what libvirt_domain 1.0 wrote: no digest
    holder = root.find('metadata')
    holder.remove(md.find(root))
    holder.append(old_element)
    libvirt.open(URI).defineXML(ET.tostring(root, encoding='unicode'))
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, md.fragment(['old'], {}), md.PREFIX, md.NAMESPACE,
                    libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert md.seed_digest(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))) is None

    def verify(real):
        assert md.seed_digest(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))) == \
            real['cloud_init']['sha256']

    check, real = four_ways(domain, args, verify)
    for result in (check, real):
        assert result['actions'] == ['update'] and result['differences'] == ['cloud_init']
        assert result['restart_required'] is False and result['cloud_init']['written'] is False
    assert domain(args)['restart_required'] is False


def test_apply_restart_restarts_a_guest_whose_seed_changed(domain, name, tmp_path):
    domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(), state='running'))
    args = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(meta_data={'zone': 'c'}),
                      state='running', apply='restart', shutdown_timeout=1, force=True)
    result = domain(args)
    assert result['restarted'] is True and result['restart_required'] is False


def test_the_instance_id_given_in_meta_data_is_kept(domain, name, tmp_path):
    result = domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init(meta_data={'instance-id': 'i-1'})))
    assert result['cloud_init']['instance_id'] == 'i-1'


def test_a_disks_list_without_the_seed_detaches_it_and_absent_removes_it(domain, name, tmp_path):
    with_seed = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init())
    domain(with_seed)
    assert len(seed_disks(name)) == 1
    without = structured(name, disk_dir=str(tmp_path))
    four_ways(domain, without)
    assert seed_disks(name) == [] and os.path.exists(seed_path(tmp_path, name))
    domain(with_seed)
    other = tmp_path / 'keep.img'
    other.write_bytes(b'x')
    removed = domain({'name': name, 'state': 'absent', 'remove_storage': True})
    assert ['file', seed_path(tmp_path, name)] in removed['removed_storage']
    assert not os.path.exists(seed_path(tmp_path, name)) and other.exists()


def test_the_seed_keeps_its_target_when_other_disks_change(domain, name, tmp_path):
    domain(structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init()))
    more = structured(name, disk_dir=str(tmp_path), cloud_init=cloud_init())
    more['disks'].append({'path': str(tmp_path / 'data.img'), 'bus': 'ide'})
    four_ways(domain, more)
    targets = sorted((disk.get('device'), disk.find('target').get('dev')) for disk in
                     ET.fromstring(lookup(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).iter('disk'))
    assert targets == [('cdrom', 'hda'), ('disk', 'hdb'), ('disk', 'vda')]


@pytest.mark.parametrize('ci, message', [
    ({'user_data': 42}, 'cloud_init.user_data: must be a dict or a string, not int'),
    ({'network_config': {'ethernets': {}}}, 'cloud_init.network_config.version: must be 1 or 2'),
    ({'meta_data': {'a': 1}, 'pool': 'no-such-pool'}, "cloud_init: storage pool 'no-such-pool' for the seed"),
])
def test_bad_cloud_init_names_the_option_and_changes_nothing(domain, name, tmp_path, ci, message):
    result = domain(structured(name, disk_dir=str(tmp_path), cloud_init=ci))
    assert result['failed'] and message in result['msg'], result['msg']
    assert name not in [dom.name() for dom in libvirt.open(URI).listAllDomains(0)]
    assert not os.listdir(str(tmp_path))


def test_a_bad_seed_in_a_batch_names_the_item(domain, name, tmp_path):
    result = domain({'domains': [structured(name, disk_dir=str(tmp_path)),
                                 structured(name + 'b', disk_dir=str(tmp_path), cloud_init={'vendor_data': 3})]})
    assert result['failed'] and result['msg'].startswith('domains[1].cloud_init.vendor_data: must be'), result['msg']


def test_cloud_init_combines_with_full_xml(domain, name, tmp_path):
    xml = ("<domain type='test'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
           "<os><type>hvm</type></os><devices><disk type='file' device='disk'><source file='%s/%s.img'/>"
           "<target dev='vda' bus='virtio'/></disk></devices></domain>" % (name, tmp_path, name))
    check, real = four_ways(domain, {'xml': xml, 'cloud_init': cloud_init()})
    assert real['actions'] == ['create_seed', 'define']
    [cdrom] = seed_disks(name)
    assert cdrom.find('source').get('file') == seed_path(tmp_path, name)


@pytest.mark.parametrize('option', [{'tags': ['a']}, {'metadata': {'k': 'v'}}, {'cloud_init': {'user_data': '#cloud-config\n'}}])
def test_tags_metadata_and_cloud_init_at_the_top_of_a_batch_are_refused(domain, name, option):
    result = domain(dict({'domains': [{'name': name}]}, **option))
    assert result['failed'] and 'mutually exclusive' in result['msg'] and list(option)[0] in result['msg']
