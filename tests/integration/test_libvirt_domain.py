# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain on qemu:///system with real emulated guests, checked on the host with virsh.

Every change is made three ways: a check run reports it and changes nothing, the real run makes it,
and a second real run and a second check run report nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

from virtops_testlib import PREFIX, run_module, serial_log, virsh, wait_for_console


def host_view(name):
    """What the host says about a domain: its state and inactive definition (virsh)."""
    try:
        return virsh('domstate', name), virsh('dumpxml', '--inactive', name)
    except subprocess.CalledProcessError:
        return 'undefined', None


def offered_domain_type():
    """The domain type a host offers its guests: kvm when libvirt offers kvm and the CPU has hardware
    virtualization (vmx or svm in /proc/cpuinfo), else qemu (TCG). Read apart from the module's own code."""
    with open('/proc/cpuinfo') as handle:
        flags = set(word for line in handle if line.startswith('flags') for word in line.split())
    offers_kvm = "<domain type='kvm'" in virsh('capabilities')
    return 'kvm' if offers_kvm and flags & {'vmx', 'svm'} else 'qemu'


def three_ways(domain, args, actions):
    """Check run, real run, real rerun, check rerun; returns the real run's result."""
    name = args.get('name') or re.search(r'<name>(.*?)</name>', args['xml']).group(1)
    before = host_view(name)
    check = domain(args, check=True)
    assert check['changed'] is True and check['actions'] == actions, check
    assert host_view(name) == before, 'check mode changed the host'
    real = domain(args)
    assert real['changed'] is True and real['actions'] == actions, real
    assert real['state'] == check['state']
    assert real.get('diff', {}).get('after') == check.get('diff', {}).get('after') or actions != ['update']
    again = domain(args)
    assert again['changed'] is False, again
    assert domain(args, check=True)['changed'] is False
    return real


def test_life_cycle_of_a_real_guest(domain, guest):
    name = guest.name
    defined = three_ways(domain, guest(), ['define'])
    assert defined['created'] is True and virsh('domstate', name) == 'shut off'
    xml = virsh('dumpxml', '--inactive', name)
    assert "<domain type='%s'>" % offered_domain_type() in xml, 'auto picks kvm where it accelerates, else TCG'
    assert "<memory unit='KiB'>131072</memory>" in xml and "<acpi/>" in xml
    uuid = virsh('domuuid', name)

    three_ways(domain, dict(guest(), state='running'), ['start'])
    assert virsh('domstate', name) == 'running'
    wait_for_console(name)

    three_ways(domain, {'name': name, 'state': 'paused'}, ['pause'])
    assert virsh('domstate', name) == 'paused'
    three_ways(domain, {'name': name, 'state': 'running'}, ['resume'])
    assert virsh('domstate', name) == 'running'

    three_ways(domain, {'name': name, 'state': 'saved'}, ['save'])
    assert virsh('domstate', name) == 'shut off'
    assert 'Managed save:   yes' in virsh('dominfo', name)
    three_ways(domain, {'name': name, 'state': 'running'}, ['restore'])
    assert virsh('domstate', name) == 'running'

    start = time.monotonic()
    stopped = three_ways(domain, {'name': name, 'state': 'shutdown', 'shutdown_timeout': 60}, ['shutdown'])
    assert stopped['state'] == 'shutoff' and virsh('domstate', name) == 'shut off'
    assert virsh('domstate', '--reason', name) == 'shut off (shutdown)', 'the guest powered itself off (ACPI)'
    assert time.monotonic() - start < 60

    three_ways(domain, {'name': name, 'state': 'running'}, ['start'])
    three_ways(domain, {'name': name, 'state': 'destroyed'}, ['destroy'])
    assert virsh('domstate', '--reason', name) == 'shut off (destroyed)'
    assert virsh('domuuid', name) == uuid

    three_ways(domain, {'name': name, 'state': 'absent'}, ['undefine'])
    assert host_view(name) == ('undefined', None)


def test_changed_definition_of_a_running_guest_needs_a_restart(domain, guest):
    name = guest.name
    domain(dict(guest(), state='running', interfaces=[{'type': 'user'}]))
    wait_for_console(name)
    mac = virsh('domiflist', name).split()[-1]

    bigger = three_ways(domain, dict(guest(memory=160), state='running', interfaces=[{'type': 'user'}]), ['update'])
    assert bigger['restart_required'] is True and bigger['restart_reasons'] == ['memory_mib']
    assert "<memory unit='KiB'>131072</memory>" in virsh('dumpxml', name), 'the running guest keeps its memory'
    rerun = domain(dict(guest(memory=160), state='running', interfaces=[{'type': 'user'}]))
    assert rerun['changed'] is False and rerun['restart_required'] is True

    restart = {'name': name, 'state': 'running', 'apply': 'restart', 'shutdown_timeout': 60}
    restarted = three_ways(domain, restart, ['restart'])
    assert restarted['restarted'] is True and restarted['restart_required'] is False
    assert "<memory unit='KiB'>163840</memory>" in virsh('dumpxml', name)
    assert virsh('domstate', name) == 'running'
    assert virsh('domiflist', name).split()[-1] == mac, 'the MAC address survives the update and the restart'


def test_guest_ignoring_acpi_fails_the_shutdown_unless_forced(domain, guest):
    name = guest.name
    domain(dict(guest('virtops.ignore_acpi=1'), state='running'))
    wait_for_console(name)
    late = domain({'name': name, 'state': 'shutdown', 'shutdown_timeout': 3})
    assert late['failed'] is True
    assert late['msg'] == ("domain '%s' did not shut down within 3 s (shutdown_timeout) and is still running: does "
                           "the guest handle the ACPI power button? Set force: true to power it off after the "
                           "timeout." % name)
    assert late['failed_object'] == "domain '%s'" % name
    assert late['changed'] is True and late['actions'] == ['shutdown'], 'the power button was pressed'
    assert virsh('domstate', name) == 'running'
    forced = domain({'name': name, 'state': 'shutdown', 'shutdown_timeout': 3, 'force': True})
    assert forced['changed'] is True and forced['actions'] == ['shutdown', 'destroy']
    assert virsh('domstate', name) == 'shut off'


def test_absent_removes_own_disks_and_keeps_shared_ones(domain, guest):
    images = '/var/lib/libvirt/images'
    own, shared = '%s/%sown.qcow2' % (images, PREFIX), '%s/%sshared.qcow2' % (images, PREFIX)
    for path in (own, shared):
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '16M'], check=True)
    other = PREFIX + 'disk-user'
    try:
        domain(guest(disks=[{'path': own}, {'path': shared, 'readonly': True}]))
        domain({'name': other, 'memory': 64, 'disks': [{'path': shared, 'readonly': True}]})
        remove = {'name': guest.name, 'state': 'absent', 'remove_storage': True}
        check = domain(remove, check=True)
        assert check['removed_storage'] == [['file', own]] and os.path.exists(own)
        assert check['kept_storage'] == [{'source': shared, 'reason': 'used by another domain'}]
        three_ways(domain, remove, ['undefine'])
        assert not os.path.exists(own) and os.path.exists(shared)
    finally:
        domain({'name': other, 'state': 'absent'})
        for path in (own, shared):
            if os.path.exists(path):
                os.remove(path)


FULL_XML = textwrap.dedent("""\
    <domain type='qemu'>
      <name>{name}</name>
      <title>integration test guest</title>
      <memory unit='MiB'>128</memory>
      <vcpu>1</vcpu>
      <os>
        <type arch='x86_64' machine='pc'>hvm</type>
        <kernel>{dir}/vmlinuz</kernel>
        <initrd>{dir}/initrd.img</initrd>
        <cmdline>console=ttyS0 quiet no_timer_check</cmdline>
      </os>
      <features><acpi/><apic/></features>
      <devices>
        <interface type='user'><model type='virtio'/></interface>
        <serial type='pty'><log file='{log}' append='off'/></serial>
        <console type='pty'/>
      </devices>
    </domain>""")


def test_full_xml_is_compared_as_libvirt_stores_it(domain, guest, guest_dir):
    name = guest.name
    xml = FULL_XML.format(name=name, dir=guest_dir, log=serial_log(name))
    three_ways(domain, {'xml': xml}, ['define'])
    mac, uuid = virsh('domiflist', name).split()[-1], virsh('domuuid', name)

    xml = xml.replace('<vcpu>1', '<vcpu>2')
    changed = three_ways(domain, {'xml': xml}, ['update'])
    assert changed['differences'] == ['domain/vcpu: 2']
    assert '-  <vcpu placement=\'static\'>1</vcpu>' not in changed['diff']['after']
    assert virsh('domiflist', name).split()[-1] == mac and virsh('domuuid', name) == uuid

    untitled = three_ways(domain, {'xml': xml.replace('<title>integration test guest</title>', '')}, ['update'])
    assert untitled['differences'] == ['domain/title: not in the desired XML']
    assert '<title>' not in virsh('dumpxml', '--inactive', name)


def test_bad_xml_leaves_the_definition_alone(domain, guest, guest_dir):
    name = guest.name
    xml = FULL_XML.format(name=name, dir=guest_dir, log=serial_log(name))
    domain({'xml': xml})
    before = virsh('dumpxml', '--inactive', name)

    broken = domain({'xml': xml.replace('</vcpu>', '</vcpus>')})
    assert broken['failed'] is True
    assert broken['msg'] == 'xml is not well-formed XML: mismatched tag (line 5, column 12)'

    refused = domain({'xml': xml.replace("<acpi/>", "<acpi/><no-such-feature/>")})
    assert refused['failed'] is True
    assert refused['msg'].startswith("libvirt refused the definition of domain '%s': " % name), refused['msg']
    assert 'no-such-feature' in refused['msg'] or 'schema' in refused['msg']
    assert virsh('dumpxml', '--inactive', name) == before


def test_many_domains_in_one_call(domain, guest_dir):
    names = ['%sbatch-%02d' % (PREFIX, index) for index in range(20)]
    items = [{'name': name, 'memory': 64, 'boot': {'kernel': '%s/vmlinuz' % guest_dir}} for name in names]
    try:
        first = domain({'domains': items})
        assert first['changed'] is True and all(item['created'] for item in first['domains'])
        assert len(first['diff']) == 20
        assert domain({'domains': items})['changed'] is False
        assert domain({'domains': items}, check=True)['changed'] is False
        listed = run_module('libvirt_domain_info', {'name': names})
        assert [item['name'] for item in listed['domains']] == names
        assert all(item['state'] == 'shutoff' and item['memory_mib'] == 64 for item in listed['domains'])
    finally:
        domain({'domains': [{'name': name, 'state': 'absent'} for name in names]})
    assert not [name for name in virsh('list', '--all', '--name').split() if name.startswith(PREFIX + 'batch')]


def test_info_reports_a_running_guest(domain, guest):
    name = guest.name
    domain(dict(guest(), interfaces=[{'type': 'user'}], autostart=True, state='running'))
    found = run_module('libvirt_domain_info', {'name': [name], 'state': ['running']})['domains']
    assert len(found) == 1
    info = found[0]
    assert info['state'] == 'running' and info['active'] is True and info['autostart'] is True
    assert info['domain_type'] == offered_domain_type() and info['memory_mib'] == 128 and info['vcpus'] == 1
    assert info['interfaces'][0]['mac'] == virsh('domiflist', name).split()[-1]
    assert info['uuid'] == virsh('domuuid', name)


def test_unreachable_daemon_says_what_to_check(domain):
    uri = 'qemu+unix:///system?socket=/run/virtops-no-such.sock'
    result = domain({'name': 'x', 'uri': uri})
    assert result['failed'] is True
    assert result['msg'].startswith('cannot connect to libvirt at %s: Failed to connect socket' % uri)


def test_disk_from_a_storage_volume(domain, guest, conn):
    pool_dir = '/var/lib/libvirt/images/%spool' % PREFIX
    os.makedirs(pool_dir, exist_ok=True)
    pool = conn.storagePoolCreateXML(
        "<pool type='dir'><name>%spool</name><target><path>%s</path></target></pool>" % (PREFIX, pool_dir), 0)
    try:
        pool.createXML("<volume><name>data.qcow2</name><capacity unit='M'>16</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
        disks = [{'volume': {'pool': PREFIX + 'pool', 'name': 'data.qcow2'}}]
        three_ways(domain, guest(disks=disks), ['define'])
        xml = virsh('dumpxml', '--inactive', guest.name)
        assert "<source pool='%spool' volume='data.qcow2'/>" % PREFIX in xml
        assert "<driver name='qemu' type='qcow2'/>" in xml, "the format comes from the volume"
        removed = domain({'name': guest.name, 'state': 'absent', 'remove_storage': True})
        assert removed['removed_storage'] == [['volume', PREFIX + 'pool/data.qcow2']]
        pool.refresh(0)
        assert pool.listVolumes() == []
    finally:
        pool.destroy()
        if os.path.isdir(pool_dir):
            for leftover in os.listdir(pool_dir):
                os.remove(os.path.join(pool_dir, leftover))
            os.rmdir(pool_dir)


def test_definitions_libvirt_refuses_fail_alike_in_check_mode_and_change_nothing(domain, guest):
    for options, message in (({'name': PREFIX + 'slash/name'}, "name '%sslash/name' contains '/'" % PREFIX),
                             ({'vcpus': 100000}, 'vcpus 100000 is more than the ')):
        args = guest(**options)
        for check in (True, False):
            refused = domain(args, check=check)
            assert refused['failed'] is True, refused
            assert refused['msg'].startswith(message), refused['msg']
            assert refused['changed'] is False and refused['actions'] == []
            assert host_view(args['name']) == ('undefined', None)


def test_refused_item_in_a_batch_keeps_the_changes_before_it(domain, guest_dir):
    names = [PREFIX + 'kept-0', PREFIX + 'kept-1', PREFIX + 'refused-2', PREFIX + 'after-3']
    items = [{'name': name, 'memory': 64, 'boot': {'kernel': '%s/vmlinuz' % guest_dir}} for name in names]
    items[2]['vcpus'] = 100000
    try:
        for check in (True, False):
            result = domain({'domains': items}, check=check)
            assert result['failed'] is True and result['msg'].startswith('domains[2]: vcpus 100000 is more than')
            assert result['changed'] is True
            assert [(item['name'], item['changed'], item['actions']) for item in result['domains']] == [
                (names[0], True, ['define']), (names[1], True, ['define']), (names[2], False, [])]
            expected = ['undefined'] * 4 if check else ['shut off', 'shut off', 'undefined', 'undefined']
            assert [host_view(name)[0] for name in names] == expected
    finally:
        domain({'domains': [{'name': name, 'state': 'absent'} for name in names[:2]]})


def both_at_once(args):
    """Run libvirt_domain twice at the same time, as two module processes (two operators, overlapping jobs)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda _: run_module('libvirt_domain', args), range(2)))


def test_two_runs_of_one_batch_at_once_both_converge(domain, guest):
    """Both runs read the domains as absent (or shut off) and act: the slower one reads again on the
    conflict and acts only on what still differs, so both succeed and each change is made once."""
    names = [guest.name + '-%d' % index for index in range(6)]
    running = set(names[:3])
    items = [dict(guest(), name=name, serial_log=serial_log(name), state='running' if name in running else 'present')
             for name in names]
    try:
        runs = both_at_once({'domains': items})
        for run in runs:
            assert not run.get('failed'), run.get('msg')
        for index, name in enumerate(names):
            done = [action for run in runs for action in run['domains'][index]['actions']]
            assert done.count('define') == 1, (name, done)
            assert done.count('start') == (1 if name in running else 0), (name, done)
            assert virsh('domstate', name) == ('running' if name in running else 'shut off')
        assert domain({'domains': items})['changed'] is False

        flipped = [dict(item, state='absent' if item['name'] in running else 'running') for item in items]
        runs = both_at_once({'domains': flipped})
        for run in runs:
            assert not run.get('failed'), run.get('msg')
        for index, name in enumerate(names):
            done = [action for run in runs for action in run['domains'][index]['actions']]
            if name in running:
                assert done.count('undefine') == 1 and done.count('destroy') == 1, (name, done)
                assert host_view(name) == ('undefined', None)
            else:
                assert done.count('start') == 1, (name, done)
                assert virsh('domstate', name) == 'running'
        again = domain({'domains': flipped})
        assert again['changed'] is False, again
    finally:
        domain({'domains': [{'name': name, 'state': 'absent'} for name in names]})


def agent_channel(xml):
    found = re.search(r"<channel type='unix'>.*?name='org\.qemu\.guest_agent\.0'.*?</channel>", xml, re.S)
    return found.group(0) if found else None


def test_guest_agent_channel_added_to_a_running_guest_and_waited_for(domain, guest):
    name = guest.name
    domain(dict(guest(), state='running'))
    wait_for_console(name)
    args = dict(guest(guest_agent=True), state='running')
    check = domain(args, check=True)
    assert check['changed'] is True and check['actions'] == ['update'] and check['differences'] == ['guest_agent']
    assert agent_channel(virsh('dumpxml', '--inactive', name)) is None, 'check mode changed the definition'
    real = domain(args)
    assert real['actions'] == ['update'] and real['differences'] == ['guest_agent']
    for result in (check, real):
        assert result['restart_required'] is True and result['restart_reasons'] == ['guest_agent'], result
    assert agent_channel(check['diff']['after']) is not None and agent_channel(check['diff']['before']) is None
    assert agent_channel(virsh('dumpxml', '--inactive', name)) is not None
    assert agent_channel(virsh('dumpxml', name)) is None, 'the running guest gets it at its next boot'
    for again in (domain(args), domain(args, check=True)):
        assert again['changed'] is False and again['restart_required'] is True, again

    restarted = domain(dict(args, apply='restart', shutdown_timeout=30, force=True))
    assert restarted['restarted'] is True and restarted['restart_required'] is False
    live = agent_channel(virsh('dumpxml', name))
    assert live is not None and "<source mode='bind' path='" in live and "state='disconnected'" in live, live
    assert domain(dict(args, guest_agent=None))['changed'] is False, 'omitted: the channel stays'

    started = time.monotonic()
    waited = domain(dict(args, wait_for='agent', wait_timeout=3))  # the tiny guest runs no qemu-ga
    assert waited['failed'] and waited['changed'] is False
    assert name + ': no address' in waited['msg'] and 'guest agent disconnected after 3 s' in waited['msg'], \
        waited['msg']
    assert time.monotonic() - started < 30

    removed = domain(dict(guest(guest_agent=False), state='running'))
    assert removed['actions'] == ['update'] and removed['restart_reasons'] == ['guest_agent']
    assert agent_channel(virsh('dumpxml', '--inactive', name)) is None
