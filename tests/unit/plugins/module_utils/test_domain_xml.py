# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain XML logic: patches, comparisons and projections against definitions libvirt 9.0 wrote."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as md
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx

# `virsh dumpxml --inactive --security-info` of a domain defined on libvirt 9.0 / QEMU 7.2.
STORED = """<domain type='qemu'>
  <name>web1</name>
  <uuid>a3f63993-8e44-4b16-bb5d-e197c0d743e9</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web1.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <controller type='usb' index='0' model='piix3-uhci'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'/>
    <interface type='network'>
      <mac address='52:54:00:ef:6a:f7'/>
      <source network='default'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <serial type='pty'>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes' passwd='secret'>
      <listen type='address'/>
    </graphics>
    <audio id='1' type='none'/>
    <video>
      <model type='cirrus' vram='16384' heads='1' primary='yes'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </video>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
  </devices>
</domain>
"""

# What the user wrote for the domain above.
WRITTEN = """<domain type='qemu'>
  <name>web1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <interface type='network'><source network='default'/><model type='virtio'/></interface>
    <serial type='pty'/><console type='pty'/>
    <graphics type='vnc' passwd='secret'/>
  </devices>
</domain>"""

ALIASES = {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'}
DISK = {'path': '/var/lib/libvirt/images/web1.qcow2', 'device': 'disk', 'bus': 'virtio', 'format': 'qcow2'}
NIC = {'network': 'default', 'type': 'network', 'model': 'virtio'}


def stored():
    return dx.parse(STORED)


def patched(**options):
    return dx.apply_options(stored(), options, ALIASES)


def same(left, right):
    return dx.canonical(left) == dx.canonical(right)


def test_serialization_matches_virsh_byte_for_byte():
    assert dx.to_string(stored()) == STORED


@pytest.mark.parametrize('text, message', [
    ("<domain><name>x</name>", 'xml is not well-formed XML: no element found (line 1, column 23)'),
    ("<domain>\n  <name>x</nam>\n</domain>", 'xml is not well-formed XML: mismatched tag (line 2, column 12)'),
    ("<network><name>x</name></network>", 'xml must have <domain> as its root element, not <network>'),
    ("<domain type='kvm'><memory>1</memory></domain>", 'xml has no <name>'),
])
def test_parse_errors_name_the_input_and_position(text, message):
    with pytest.raises(dx.DomainXMLError) as error:
        dx.parse(text, 'xml')
    assert str(error.value) == message


def test_options_matching_the_definition_change_nothing():
    result = patched(memory=256, vcpus=2, machine='pc', disks=[dict(DISK)], interfaces=[dict(NIC)],
                     serial_console=True, boot={'devices': ['hd']}, cpu={'mode': 'custom', 'model': 'qemu64'},
                     graphics={'type': 'vnc', 'password': 'secret'})
    assert dx.to_string(result) == STORED


def test_memory_and_vcpus_patch_only_their_elements():
    result = patched(memory=1024, vcpus=4)
    assert result.find('memory').text == str(1024 * 1024) and result.find('currentMemory').text == str(1024 * 1024)
    assert result.find('vcpu').text == '4' and result.find('vcpu').get('placement') == 'static'
    result.find('memory').text = result.find('currentMemory').text = '262144'
    result.find('vcpu').text = '2'
    assert same(result, stored())


def test_changed_network_keeps_mac_and_pci_address():
    result = patched(interfaces=[{'bridge': 'br0', 'type': 'bridge', 'model': 'virtio'}])
    interface = result.find('devices/interface')
    assert interface.get('type') == 'bridge' and interface.find('source').get('bridge') == 'br0'
    assert dx.interface_mac(interface) == '52:54:00:ef:6a:f7'
    assert interface.find('address').get('slot') == '0x03'


def test_interfaces_pair_by_mac_before_position():
    first = dict(NIC, mac='52:54:00:aa:aa:aa')
    second = dict(NIC, mac='52:54:00:EF:6A:F7')
    result = patched(interfaces=[first, second])
    macs = [dx.interface_mac(elem) for elem in result.findall('devices/interface')]
    assert macs == ['52:54:00:aa:aa:aa', '52:54:00:ef:6a:f7']
    assert result.findall('devices/interface')[0].find('address') is None  # new: libvirt assigns one
    assert result.findall('devices/interface')[1].find('address') is not None


def test_disk_list_is_complete_new_disks_get_free_targets():
    extra = {'path': '/var/lib/libvirt/images/data.raw', 'device': 'disk', 'bus': 'virtio', 'format': 'raw'}
    cdrom = {'device': 'cdrom', 'bus': 'sata'}
    result = patched(disks=[dict(DISK), extra, cdrom])
    disks = result.findall('devices/disk')
    assert [dx.summarize(result)['disks'][i]['target'] for i in range(3)] == ['vda', 'vdb', 'sda']
    assert disks[0].find('address').get('slot') == '0x04'
    assert disks[2].find('readonly') is not None and disks[2].find('source') is None
    again = dx.apply_options(copy.deepcopy(result), {'disks': [dict(DISK), extra, cdrom]}, ALIASES)
    assert same(again, result)
    assert patched(disks=[]).findall('devices/disk') == []


def test_changing_a_disk_bus_drops_its_pci_address():
    result = patched(disks=[dict(DISK, bus='sata')])
    disk = result.find('devices/disk')
    assert disk.find('target').attrib == {'dev': 'sda', 'bus': 'sata'}
    assert disk.find('address') is None


def test_machine_alias_is_not_a_change():
    assert same(patched(machine='pc'), stored())
    assert patched(machine='q35').find('os/type').get('machine') == 'pc-q35-7.2'


def test_graphics_password_and_listen():
    assert same(patched(graphics={'type': 'vnc', 'password': 'secret'}), stored())
    result = patched(graphics={'type': 'vnc', 'password': '', 'listen': '127.0.0.1'})
    graphics = result.find('devices/graphics')
    assert 'passwd' not in graphics.attrib and graphics.get('listen') == '127.0.0.1'
    assert graphics.find('listen').attrib == {'type': 'address', 'address': '127.0.0.1'}
    assert patched(graphics={'type': 'none'}).find('devices/graphics') is None


def test_serial_console_off_removes_serial_and_console():
    result = patched(serial_console=False)
    assert result.find('devices/serial') is None and result.find('devices/console') is None
    logged = patched(serial_log='/var/log/libvirt/qemu/web1-serial.log')
    assert logged.find('devices/serial/log').attrib == {'file': '/var/log/libvirt/qemu/web1-serial.log', 'append': 'off'}


def test_direct_kernel_boot_is_set_and_removed():
    boot = {'kernel': '/k', 'initrd': '/i', 'cmdline': 'console=ttyS0'}
    result = patched(boot=boot)
    assert [child.tag for child in result.find('os')] == ['type', 'kernel', 'initrd', 'cmdline', 'boot']
    removed = dx.apply_options(result, {'boot': {'kernel': '', 'initrd': '', 'cmdline': ''}})
    assert same(removed, stored())


def test_cpu_mode_change_replaces_the_element():
    result = patched(cpu={'mode': 'host-passthrough'})
    assert result.find('cpu').attrib == {'mode': 'host-passthrough'} and len(result.find('cpu')) == 0
    with pytest.raises(dx.DomainXMLError, match="cpu.model is required"):
        patched(cpu={'mode': 'host-passthrough'}) and dx.apply_options(
            dx.skeleton('x', 'qemu', 'x86_64', None), {'cpu': {'mode': 'custom'}})


def test_written_xml_matches_what_libvirt_stored():
    assert dx.differences(dx.parse(WRITTEN), stored(), ALIASES) == []


@pytest.mark.parametrize('change, expected', [
    (("<memory unit='MiB'>256</memory>", "<memory unit='GiB'>1</memory>"), ['domain/memory: 1048576 KiB, not 262144 KiB']),
    (("<vcpu>2</vcpu>", "<vcpu>3</vcpu>"), ['domain/vcpu: 3']),
    (("machine='pc'", "machine='q35'"), ["domain/os/type/@machine: pc-q35-7.2"]),
    (("<serial type='pty'/>", ""), ["domain/devices/serial[@type='pty']: not in the desired XML"]),
    (("passwd='secret'", "passwd='other'"), ["domain/devices/graphics[@type='vnc']/@passwd: ********"]),
    (("<boot dev='hd'/>", "<boot dev='network'/>"),
     ["domain/os/boot[@dev='network']: missing", "domain/os/boot[@dev='hd']: not in the desired XML"]),
])
def test_differences_name_what_changed(change, expected):
    assert dx.differences(dx.parse(WRITTEN.replace(*change)), stored(), ALIASES) == expected


def test_removed_title_is_a_difference_but_implicit_devices_are_not():
    with_title = stored()
    title = dx.ET.Element('title')
    title.text = 'Web server'
    with_title.insert(2, title)
    assert dx.differences(dx.parse(WRITTEN), with_title, ALIASES) == ["domain/title: not in the desired XML"]


def test_identity_is_adopted_so_uuid_and_macs_stay():
    desired = dx.adopt_identity(dx.parse(WRITTEN), stored())
    assert desired.findtext('uuid') == 'a3f63993-8e44-4b16-bb5d-e197c0d743e9'
    assert dx.interface_mac(desired.find('devices/interface')) == '52:54:00:ef:6a:f7'


def test_projection_of_written_xml_is_the_stored_definition():
    desired = dx.adopt_identity(dx.parse(WRITTEN), stored())
    assert dx.to_string(dx.project(desired, stored(), ALIASES)) == STORED


def test_projection_applies_a_memory_change_to_current_memory_too():
    desired = dx.adopt_identity(dx.parse(WRITTEN.replace('>256<', '>512<')), stored())
    projected = dx.project(desired, stored(), ALIASES)
    assert projected.find('memory').text == projected.find('currentMemory').text == str(512 * 1024)


def test_secrets_are_masked_and_a_change_is_marked():
    assert "passwd='********'" in dx.mask_secrets(STORED)
    assert 'secret' not in dx.mask_secrets(STORED)
    assert "passwd='******** (changed)'" in dx.mask_secrets(STORED, changed=True)
    assert dx.secrets_of(STORED) == [("'", 'secret')]


def test_restart_differences_compare_the_running_guest_with_its_next_boot():
    live = STORED.replace("<target type='isa-serial' port='0'>", "<source path='/dev/pts/1'/><target type='isa-serial' port='0'>")
    live = live.replace("port='-1' autoport='yes'", "port='5900' autoport='yes'")
    assert dx.restart_differences(dx.parse(live), stored()) == []
    assert dx.restart_differences(dx.parse(live), patched(memory=512, vcpus=1)) == ['memory_mib', 'vcpus']


def with_seed(root, digest):
    md.apply(root, {'tags': [], 'metadata': {}, 'seed': digest})
    return root


def test_a_seed_digest_other_than_the_booted_one_needs_a_restart_an_unknown_one_does_not():
    booted = with_seed(stored(), 'sha256:aa')
    assert dx.restart_differences(booted, with_seed(stored(), 'sha256:bb')) == ['cloud_init']
    assert dx.restart_differences(booted, with_seed(stored(), 'sha256:aa')) == []
    assert dx.restart_differences(stored(), with_seed(stored(), 'sha256:bb')) == [], 'booted before digests'
    assert dx.unsummarized_differences(stored(), with_seed(stored(), 'sha256:bb')) == ['cloud_init']


def test_guest_agent_adds_one_channel_where_libvirt_puts_it_and_removes_it():
    root = patched(guest_agent=True)
    devices = [child.tag for child in root.find('devices')]
    assert devices.count('channel') == 1 and devices.index('channel') > devices.index('serial')
    assert dx.has_guest_agent(root) and same(dx.apply_options(copy.deepcopy(root), {'guest_agent': True}), root)
    assert dx.restart_differences(stored(), root) == ['guest_agent']
    assert not dx.has_guest_agent(dx.apply_options(root, {'guest_agent': False}))
    assert same(patched(guest_agent=False), stored())


def test_the_channel_libvirt_completed_is_the_same_guest_agent():
    root = patched(guest_agent=True)
    channel = next(root.iter('channel'))
    channel.insert(0, ET.Element('source', {'mode': 'bind', 'path': '/run/libvirt/qemu/channel/1-web1/org.qemu.guest_agent.0'}))
    ET.SubElement(channel, 'address', {'type': 'virtio-serial', 'controller': '0', 'bus': '0', 'port': '1'})
    assert same(dx.apply_options(copy.deepcopy(root), {'guest_agent': True}), root)
    assert dx.restart_differences(root, patched(guest_agent=True)) == []
