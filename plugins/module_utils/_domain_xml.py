# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain XML without libvirt: parse, patch with structured options, compare, summarize.

Two ways to say what a domain should look like, two ways to compare:

* Structured options patch a copy of the definition libvirt returned (or a skeleton for a new
  domain). Everything the options do not name stays as libvirt wrote it, so the patched tree equals
  the current one exactly when nothing needs to change.
* A full XML document is compared as a subset: each element and attribute it contains must be in
  the current definition (after the unit and alias rewrites libvirt does), while what libvirt adds
  on its own (UUID, MAC and PCI addresses, controllers, default devices) is not held against it.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as domain_metadata
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_addresses import AGENT_CHANNEL
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

MEMORY_UNITS = {
    'b': 1, 'bytes': 1, 'k': 1024, 'kib': 1024, 'kb': 1000, 'm': 1024 ** 2, 'mib': 1024 ** 2, 'mb': 1000 ** 2,
    'g': 1024 ** 3, 'gib': 1024 ** 3, 'gb': 1000 ** 3, 't': 1024 ** 4, 'tib': 1024 ** 4, 'tb': 1000 ** 4,
}
MEMORY_ELEMENTS = ('memory', 'currentMemory', 'maxMemory')

# Devices libvirt adds to a definition on its own; a full XML that leaves them out still matches.
IMPLICIT_DEVICES = frozenset(('emulator', 'controller', 'memballoon', 'input', 'video', 'audio', 'console'))
# Top-level elements only a user writes: leaving them out of a full XML removes them.
USER_ONLY_ELEMENTS = frozenset(('title', 'description'))
SECRET_ATTRIBUTES = ('passwd',)
SECRET_MASK = '********'

DISK_TARGET_PREFIX = {'virtio': 'vd', 'sata': 'sd', 'scsi': 'sd', 'usb': 'sd', 'ide': 'hd', 'fdc': 'fd'}


class DomainXMLError(ModuleFailure, ValueError):
    """The XML or the options cannot describe a domain; the message names the input."""


def parse(text, what='xml'):
    """Parse a domain definition; errors name the input and the position."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise DomainXMLError('%s is not well-formed XML: %s (line %d, column %d)'
                             % (what, str(exc).split(':', maxsplit=1)[0], line, column + 1))
    if root.tag != 'domain':
        raise DomainXMLError("%s must have <domain> as its root element, not <%s>" % (what, root.tag))
    name = root.findtext('name')
    if not name or not name.strip():
        raise DomainXMLError('%s has no <name>' % what)
    return root


# Prefixes for namespaced elements (ElementTree keeps only the URI); libvirt keeps whatever a document uses.
KNOWN_PREFIXES = {
    'urn:virtops:hypervisor:domain:1': 'virtops',
    'http://libosinfo.org/xmlns/libvirt/domain/1.0': 'libosinfo',
}


def to_string(root):
    """Serialize the way virsh dumpxml does (two-space indent, single quotes), so diffs show only changes."""
    lines = []
    _serialize(root, 0, lines, {'http://www.w3.org/XML/1998/namespace': 'xml'})
    return '\n'.join(lines) + '\n'


def _escape(text, quote=False):
    text = text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
    return text.replace("'", '&apos;') if quote else text


def _qualified(name, scope, declare):
    """prefix:local for a '{uri}local' name; a URI not declared in scope yet is added to declare."""
    if not name.startswith('{'):
        return name
    uri, local = name[1:].split('}', 1)
    if uri not in scope:
        taken = set(scope.values())
        prefix = KNOWN_PREFIXES.get(uri)
        if prefix is None or prefix in taken:
            prefix = next('ns%d' % n for n in range(len(taken) + 1) if 'ns%d' % n not in taken)
        scope[uri] = prefix
        declare.append((prefix, uri))
    return '%s:%s' % (scope[uri], local)


def _serialize(elem, level, lines, scope):
    pad = '  ' * level
    scope = dict(scope)
    declare = []
    tag = _qualified(elem.tag, scope, declare)
    attrib = [(_qualified(key, scope, declare), value) for key, value in elem.attrib.items()]
    attrib[:0] = [('xmlns:' + prefix, uri) for prefix, uri in declare]
    attrs = ''.join(" %s='%s'" % (key, _escape(value, quote=True)) for key, value in attrib)
    text = (elem.text or '').strip()
    children = list(elem)
    if not children and not text:
        lines.append('%s<%s%s/>' % (pad, tag, attrs))
    elif not children:
        lines.append('%s<%s%s>%s</%s>' % (pad, tag, attrs, _escape(text), tag))
    else:
        lines.append('%s<%s%s>%s' % (pad, tag, attrs, _escape(text)))
        for child in children:
            _serialize(child, level + 1, lines, scope)
        lines.append('%s</%s>' % (pad, tag))


def canonical(elem):
    """A hashable form that ignores whitespace and attribute order, not child order."""
    return (elem.tag, tuple(sorted(elem.attrib.items())), (elem.text or '').strip(),
            tuple(canonical(child) for child in elem))


def mask_secrets(text, changed=False):
    """Hide graphics passwords in XML meant for diffs and results; mark a changed one."""
    mask = SECRET_MASK + (' (changed)' if changed else '')
    for attribute in SECRET_ATTRIBUTES:
        text = re.sub(r"""(\s%s=)(['"]).*?\2""" % attribute, r"\1'%s'" % mask, text)
    return text


def secrets_of(text):
    return re.findall(r"""\s(?:%s)=(['"])(.*?)\1""" % '|'.join(SECRET_ATTRIBUTES), text or '')


def memory_kib(elem):
    """Size of a <memory>-like element in KiB."""
    unit = (elem.get('unit') or 'KiB').lower()
    if unit not in MEMORY_UNITS:
        raise DomainXMLError("<%s> has an unknown unit '%s'" % (elem.tag, elem.get('unit')))
    return int(elem.text.strip()) * MEMORY_UNITS[unit] // 1024


def _child(parent, tag, before=None):
    """The first <tag> child of parent, created (optionally before another tag) when missing."""
    found = parent.find(tag)
    if found is None:
        found = ET.Element(tag)
        position = len(parent)
        for anchor in before or ():
            index = _index_of(parent, anchor)
            if index is not None:
                position = index
                break
        parent.insert(position, found)
    return found


def _index_of(parent, tag):
    for index, child in enumerate(parent):
        if child.tag == tag:
            return index
    return None


def _set_text(parent, tag, value, before=None):
    _child(parent, tag, before).text = value


def _remove_all(parent, tag):
    for child in parent.findall(tag):
        parent.remove(child)


# --- new domains -------------------------------------------------------------------------------

def skeleton(name, domain_type, arch, machine):
    """The smallest definition the structured options are applied to when a domain is new."""
    root = ET.Element('domain', {'type': domain_type})
    ET.SubElement(root, 'name').text = name
    ET.SubElement(root, 'memory', {'unit': 'KiB'}).text = str(512 * 1024)
    ET.SubElement(root, 'currentMemory', {'unit': 'KiB'}).text = str(512 * 1024)
    ET.SubElement(root, 'vcpu', {'placement': 'static'}).text = '1'
    os_elem = ET.SubElement(root, 'os')
    type_attrs = {'arch': arch}
    if machine:
        type_attrs['machine'] = machine
    ET.SubElement(os_elem, 'type', type_attrs).text = 'hvm'
    features = ET.SubElement(root, 'features')
    ET.SubElement(features, 'acpi')  # without ACPI a guest cannot be shut down gracefully
    ET.SubElement(features, 'apic')
    ET.SubElement(root, 'devices')
    return root


# --- structured options ------------------------------------------------------------------------

def apply_options(root, options, machine_aliases=None):
    """Patch a definition in place with the structured options that are set (None: leave alone)."""
    if options.get('domain_type') not in (None, 'auto'):
        root.set('type', options['domain_type'])
    if options.get('memory') is not None:
        kib = str(options['memory'] * 1024)
        for tag in ('memory', 'currentMemory'):
            elem = _child(root, tag, before=('vcpu', 'os'))
            elem.set('unit', 'KiB')
            elem.text = kib
    if options.get('vcpus') is not None:
        vcpu = _child(root, 'vcpu', before=('os',))
        vcpu.text = str(options['vcpus'])
        if vcpu.get('current') and int(vcpu.get('current')) > options['vcpus']:
            del vcpu.attrib['current']
    if options.get('machine'):
        _apply_machine(root, options['machine'], machine_aliases or {})
    if options.get('cpu'):
        _apply_cpu(root, options['cpu'])
    if options.get('boot'):
        _apply_boot(root, options['boot'])
    if options.get('firmware'):
        _apply_firmware(root, options['firmware'])
    devices = _child(root, 'devices')
    if options.get('disks') is not None:
        _apply_disks(devices, options['disks'])
    if options.get('interfaces') is not None:
        _apply_interfaces(devices, options['interfaces'])
    if options.get('serial_console') is not None or options.get('serial_log'):
        _apply_serial(devices, options.get('serial_console'), options.get('serial_log'))
    if options.get('graphics'):
        _apply_graphics(devices, options['graphics'])
    if options.get('guest_agent') is not None:
        _apply_guest_agent(devices, options['guest_agent'])
    return root


def canonical_machine(machine, aliases):
    return aliases.get(machine, machine)


def _apply_machine(root, machine, aliases):
    os_type = _child(_child(root, 'os'), 'type')
    current = os_type.get('machine')
    if current is None or canonical_machine(current, aliases) != canonical_machine(machine, aliases):
        os_type.set('machine', canonical_machine(machine, aliases))


def _apply_cpu(root, cpu):
    mode = cpu.get('mode') or 'custom'
    elem = root.find('cpu')
    if elem is not None and elem.get('mode', 'custom') == mode:
        if mode == 'custom' and cpu.get('model'):
            model = _child(elem, 'model')
            if (model.text or '').strip() != cpu['model']:
                model.text = cpu['model']
        return
    if elem is not None:
        root.remove(elem)
    elem = ET.Element('cpu', {'mode': mode})
    if mode == 'custom':
        if not cpu.get('model'):
            raise DomainXMLError("cpu.model is required when cpu.mode is 'custom'")
        ET.SubElement(elem, 'model').text = cpu['model']
    index = _index_of(root, 'clock')
    if index is None:
        index = _index_of(root, 'devices')
    root.insert(index if index is not None else len(root), elem)


def _apply_boot(root, boot):
    os_elem = _child(root, 'os')
    if boot.get('devices') is not None:
        existing = [elem.get('dev') for elem in os_elem.findall('boot')]
        if existing != list(boot['devices']):
            _remove_all(os_elem, 'boot')
            for dev in boot['devices']:
                os_elem.append(ET.Element('boot', {'dev': dev}))
    for key in ('kernel', 'initrd', 'cmdline'):
        value = boot.get(key)
        if value is None:
            continue
        if value == '':
            _remove_all(os_elem, key)
        elif os_elem.findtext(key) != value:
            _set_text(os_elem, key, value, before=('boot',))


def firmware_of(root):
    """'efi' for a domain with <os firmware='efi'> or a pflash loader (OVMF), else 'bios'."""
    os_elem = root.find('os')
    if os_elem is None:
        return 'bios'
    loader = os_elem.find('loader')
    return 'efi' if os_elem.get('firmware') == 'efi' or (loader is not None and loader.get('type') == 'pflash') \
        else 'bios'


def _apply_firmware(root, firmware):
    """efi: libvirt's firmware autoselection (<os firmware='efi'>); bios: neither that nor an OVMF loader."""
    os_elem = _child(root, 'os')
    if firmware_of(root) == firmware:
        return
    if firmware == 'efi':
        os_elem.set('firmware', 'efi')
    else:
        os_elem.attrib.pop('firmware', None)
        _remove_all(os_elem, 'loader')
        _remove_all(os_elem, 'nvram')


def disk_source(disk_elem):
    """(kind, value) of a <disk> source: ('file', path), ('block', dev), ('volume', 'pool/vol') or None."""
    source = disk_elem.find('source')
    if source is None:
        return None
    if source.get('file'):
        return ('file', source.get('file'))
    if source.get('dev'):
        return ('block', source.get('dev'))
    if source.get('pool') and source.get('volume'):
        return ('volume', '%s/%s' % (source.get('pool'), source.get('volume')))
    return None


def wanted_disk_source(disk):
    if disk.get('volume'):
        return ('volume', '%s/%s' % (disk['volume']['pool'], disk['volume']['name']))
    if disk.get('path'):
        return ('block' if disk['path'].startswith('/dev/') else 'file', disk['path'])
    return None


def _apply_disks(devices, disks):
    existing = devices.findall('disk')
    pairs = _match(disks, existing, [
        lambda want, have: wanted_disk_source(want) is not None and wanted_disk_source(want) == disk_source(have),
        lambda want, have: want.get('target') is not None and want['target'] == target_dev(have),
        lambda want, have: wanted_disk_source(want) is None and have.get('device') == want['device']
        and disk_source(have) is None,
    ])
    for elem in existing:
        devices.remove(elem)
    used = set(want['target'] for want in disks if want.get('target'))
    used.update(target_dev(have) for want, have in pairs if have is not None and not want.get('target'))
    index = _device_insert_index(devices, 'disk')
    for want, have in pairs:
        elem = _disk_element(want, have, used)
        devices.insert(index, elem)
        index += 1


def target_dev(disk_elem):
    target = disk_elem.find('target')
    return target.get('dev') if target is not None else None


def _disk_element(want, have, used):
    elem = have if have is not None else ET.Element('disk')
    source = wanted_disk_source(want)
    kind = source[0] if source else 'file'
    elem.set('type', kind)
    elem.set('device', want['device'])
    driver = _child(elem, 'driver')
    driver.set('name', driver.get('name') or 'qemu')
    if want.get('format'):
        driver.set('type', want['format'])
    if disk_source(elem) != source:
        _remove_all(elem, 'source')
        if source is not None:
            if kind == 'volume':
                attrs = {'pool': want['volume']['pool'], 'volume': want['volume']['name']}
            else:
                attrs = {'file' if kind == 'file' else 'dev': source[1]}
            elem.insert(_index_of(elem, 'driver') + 1, ET.Element('source', attrs))
    target = _child(elem, 'target')
    bus = want['bus']
    if target.get('bus') != bus:
        _remove_all(elem, 'address')  # a PCI address does not fit a SATA disk, and back
    dev = want.get('target') or target.get('dev')
    if not dev or not dev.startswith(DISK_TARGET_PREFIX.get(bus, 'sd')):
        used.discard(dev)
        dev = _free_target(bus, used)
    used.add(dev)
    target.set('dev', dev)
    target.set('bus', bus)
    readonly = elem.find('readonly')
    if (want.get('readonly') or want['device'] == 'cdrom') and readonly is None:
        elem.insert(list(elem).index(target) + 1, ET.Element('readonly'))
    elif not (want.get('readonly') or want['device'] == 'cdrom') and readonly is not None:
        elem.remove(readonly)
    return elem


def attach_disk(root, want, previous=None):
    """Make sure root has the disk want (options form) after its other disks; return its target dev.

    The disk is paired by source with one in root, else in previous (the definition before the options
    were applied, which may have dropped it), so the target and address libvirt gave it are kept.
    """
    devices = _child(root, 'devices')
    source = wanted_disk_source(want)
    have = next((disk for disk in devices.findall('disk') if disk_source(disk) == source), None)
    if have is not None:
        devices.remove(have)
    elif previous is not None:
        found = next((disk for disk in previous.iter('disk') if disk_source(disk) == source), None)
        have = copy.deepcopy(found) if found is not None else None
    used = set(target_dev(disk) for disk in devices.findall('disk'))
    if have is not None and target_dev(have) in used:
        _remove_all(have, 'address')
        _remove_all(have, 'target')
    elem = _disk_element(want, have, used)
    disks = devices.findall('disk')
    position = _libvirt_disk_position(disks, elem)
    if position < len(disks):
        index = list(devices).index(disks[position])
    else:
        index = list(devices).index(disks[-1]) + 1 if disks else _device_insert_index(devices, 'disk')
    devices.insert(index, elem)
    return target_dev(elem)


def _libvirt_disk_position(disks, new):
    """Where libvirt puts a new disk among disks (virDomainDiskInsert): after the disks of its bus whose
    target sorts before it, before those after it; at the end when no disk has its bus. Placing it there
    makes the definition this run writes the one libvirt stores, so a rerun compares equal."""
    bus, index = new.find('target').get('bus'), _target_index(target_dev(new))
    position = None
    for at in range(len(disks) - 1, -1, -1):
        if disks[at].find('target') is None or disks[at].find('target').get('bus') != bus:
            continue
        if _target_index(target_dev(disks[at])) > index:
            position = at
        elif position is None:
            position = at + 1
    return len(disks) if position is None else position


def _target_index(dev):
    """virDiskNameToIndex: hda 0, hdb 1, ..., sdaa 26."""
    letters = re.sub(r'^(hd|sd|vd|xvd|fd|ubd)', '', dev or '')
    value = 0
    for letter in letters:
        if not 'a' <= letter <= 'z':
            return -1
        value = value * 26 + ord(letter) - ord('a') + 1
    return value - 1


def detach_disks(root, keep):
    """Remove the disks for which keep(disk element) is false."""
    devices = root.find('devices')
    for disk in devices.findall('disk') if devices is not None else ():
        if not keep(disk):
            devices.remove(disk)


def _free_target(bus, used):
    prefix = DISK_TARGET_PREFIX.get(bus, 'sd')
    for letter in 'abcdefghijklmnopqrstuvwxyz':
        if prefix + letter not in used:
            return prefix + letter
    raise DomainXMLError('no free disk target name left for bus %s' % bus)


def interface_source(elem):
    """(type, source name) of an <interface>."""
    kind = elem.get('type')
    source = elem.find('source')
    name = None
    if source is not None:
        name = source.get('network') or source.get('bridge') or source.get('dev')
    return (kind, name)


def wanted_interface_source(interface):
    if interface.get('network'):
        return ('network', interface['network'])
    if interface.get('bridge'):
        return ('bridge', interface['bridge'])
    return (interface.get('type') or 'user', None)


def interface_mac(elem):
    mac = elem.find('mac')
    return mac.get('address').lower() if mac is not None and mac.get('address') else None


def _apply_interfaces(devices, interfaces):
    existing = devices.findall('interface')
    pairs = match_interfaces(interfaces, existing)
    for elem in existing:
        devices.remove(elem)
    index = _device_insert_index(devices, 'interface')
    for want, have in pairs:
        devices.insert(index, _interface_element(want, have))
        index += 1


def match_interfaces(wanted, existing):
    """Pair wanted interfaces with existing ones: by MAC, then by source, then by position."""
    return _match(wanted, existing, [
        lambda want, have: want.get('mac') is not None and want['mac'].lower() == interface_mac(have),
        lambda want, have: want.get('mac') is None and wanted_interface_source(want) == interface_source(have),
        lambda want, have: want.get('mac') is None,
    ])


def _interface_element(want, have):
    kind, name = wanted_interface_source(want)
    elem = have if have is not None else ET.Element('interface')
    if interface_source(elem) != (kind, name):
        elem.set('type', kind)
        _remove_all(elem, 'source')
        if name is not None:
            position = 1 if elem.find('mac') is not None else 0
            elem.insert(position, ET.Element('source', {kind: name}))
    if want.get('mac') and interface_mac(elem) != want['mac'].lower():
        _remove_all(elem, 'mac')
        elem.insert(0, ET.Element('mac', {'address': want['mac'].lower()}))
    model = _child(elem, 'model')
    if model.get('type') != want['model']:
        model.set('type', want['model'])
    return elem


def _match(wanted, existing, rules):
    """Pair each wanted item with at most one existing element, trying the rules in order."""
    free = list(existing)
    paired = [None] * len(wanted)
    for rule in rules:
        for position, want in enumerate(wanted):
            if paired[position] is not None:
                continue
            for have in free:
                if rule(want, have):
                    paired[position] = have
                    free.remove(have)
                    break
    return list(zip(wanted, paired))


def _device_insert_index(devices, tag):
    """Where devices of this tag go: where they were, else after the emulator and the disks."""
    order = ('emulator', 'disk', 'controller', 'interface', 'serial', 'console', 'channel', 'input', 'graphics')
    later = order[order.index(tag) + 1:] if tag in order else ()
    for index, child in enumerate(devices):
        if child.tag in later or child.tag not in order:
            return index
    return len(devices)


def _apply_serial(devices, enabled, log_file):
    serials = devices.findall('serial')
    if enabled is False:
        for elem in serials + devices.findall('console'):
            devices.remove(elem)
        return
    if not serials:
        serial = ET.Element('serial', {'type': 'pty'})
        devices.insert(_device_insert_index(devices, 'serial'), serial)
        serials = [serial]
    if not devices.findall('console'):
        console = ET.Element('console', {'type': 'pty'})
        ET.SubElement(console, 'target', {'type': 'serial', 'port': '0'})
        devices.insert(_device_insert_index(devices, 'console'), console)
    if log_file:
        log = serials[0].find('log')
        if log is None or log.get('file') != log_file or log.get('append') != 'off':
            _remove_all(serials[0], 'log')
            position = 1 if serials[0].find('source') is not None else 0
            serials[0].insert(position, ET.Element('log', {'file': log_file, 'append': 'off'}))


def _apply_graphics(devices, graphics):
    kind = graphics['type']
    existing = devices.findall('graphics')
    if kind == 'none':
        for elem in existing:
            devices.remove(elem)
        return
    same = [elem for elem in existing if elem.get('type') == kind]
    for elem in existing:
        if elem not in same[:1]:
            devices.remove(elem)
    if same:
        elem = same[0]
    else:
        elem = ET.Element('graphics', {'type': kind, 'port': '-1', 'autoport': 'yes'})
        devices.insert(_device_insert_index(devices, 'graphics'), elem)
    port = graphics.get('port')
    if port is not None:
        autoport = 'yes' if port == -1 else 'no'
        if elem.get('port') != str(port) or elem.get('autoport') != autoport:
            elem.set('port', str(port))
            elem.set('autoport', autoport)
    listen = graphics.get('listen')
    if listen is not None:
        listen_elem = elem.find('listen')
        if elem.get('listen') != listen or listen_elem is None or listen_elem.get('address') != listen:
            elem.set('listen', listen)
            _remove_all(elem, 'listen')
            ET.SubElement(elem, 'listen', {'type': 'address', 'address': listen})
    password = graphics.get('password')
    if password is not None:
        if password == '':
            elem.attrib.pop('passwd', None)
        elif elem.get('passwd') != password:
            elem.set('passwd', password)


def is_guest_agent_channel(elem):
    target = elem.find('target')
    return target is not None and target.get('name') == AGENT_CHANNEL


def has_guest_agent(root):
    return any(is_guest_agent_channel(elem) for elem in root.findall('devices/channel'))


def _apply_guest_agent(devices, enabled):
    """A virtio channel named for qemu-ga; libvirt picks its socket and adds the virtio-serial controller."""
    channels = [elem for elem in devices.findall('channel') if is_guest_agent_channel(elem)]
    if not enabled:
        for elem in channels:
            devices.remove(elem)
        return
    if not channels:
        channel = ET.Element('channel', {'type': 'unix'})
        ET.SubElement(channel, 'target', {'type': 'virtio', 'name': AGENT_CHANNEL})
        devices.insert(_device_insert_index(devices, 'channel'), channel)


# --- full XML ----------------------------------------------------------------------------------

def adopt_identity(desired, current):
    """Give a desired full XML the UUID and MAC addresses libvirt already assigned, so they stay."""
    uuid = current.findtext('uuid')
    if uuid and desired.find('uuid') is None:
        elem = ET.Element('uuid')
        elem.text = uuid
        desired.insert(_index_of(desired, 'name') + 1, elem)
    wanted_devices = desired.find('devices')
    current_devices = current.find('devices')
    if wanted_devices is None or current_devices is None:
        return desired
    wanted = wanted_devices.findall('interface')
    described = [{'mac': interface_mac(elem), 'network': None, 'bridge': None} for elem in wanted]
    for item, elem in zip(described, wanted):
        kind, name = interface_source(elem)
        item.update({'type': kind, kind: name} if kind in ('network', 'bridge') else {'type': kind})
    for (item, have), elem in zip(match_interfaces(described, current_devices.findall('interface')), wanted):
        if have is not None and item['mac'] is None and interface_mac(have):
            elem.insert(0, ET.Element('mac', {'address': interface_mac(have)}))
    return desired


def differences(desired, current, machine_aliases=None):
    """Where a current definition falls short of a desired full XML; empty when it matches."""
    found = []
    _compare(desired, current, desired.tag, found, machine_aliases or {})
    return found


def _same_value(want, have):
    if want == have:
        return True
    try:
        return int(want, 0) == int(have, 0)
    except (TypeError, ValueError):
        return False


def _compare(want, have, path, found, aliases):
    if want.tag in MEMORY_ELEMENTS:
        if memory_kib(want) != memory_kib(have):
            found.append('%s: %d KiB, not %d KiB' % (path, memory_kib(want), memory_kib(have)))
        return
    for key, value in want.attrib.items():
        current = have.get(key)
        if path.endswith('/os/type') and key == 'machine' and current is not None:
            value, current = canonical_machine(value, aliases), canonical_machine(current, aliases)
        if not _same_value(value, current):
            shown = SECRET_MASK if key in SECRET_ATTRIBUTES else value
            found.append('%s/@%s: %s' % (path, key, shown))
    text = (want.text or '').strip()
    if text and not _same_value(text, (have.text or '').strip()):
        found.append('%s: %s' % (path, text))
    _compare_children(want, have, path, found, aliases)


def _compare_children(want, have, path, found, aliases):
    pairs, extra = _pair_children(want, have)
    for child, match in pairs:
        if match is None:
            found.append('%s/%s: missing' % (path, _label(child)))
        else:
            _compare(child, match, '%s/%s' % (path, _label(child)), found, aliases)
    for elem, removed in extra:
        if removed:
            found.append('%s/%s: not in the desired XML' % (path, _label(elem)))


def _pair_children(want, have):
    """Pair desired children with current ones; say of each unpaired current child whether it goes away.

    A current child without a desired counterpart stays when libvirt adds it on its own: a default
    device, or any element of a kind the desired XML does not mention at that level. When the desired
    XML lists elements of a kind (disks, boot devices, features...), it lists all of them.
    """
    remaining = list(have)
    pairs = []
    for child in want:
        candidates = [elem for elem in remaining if elem.tag == child.tag and _same_identity(child, elem)]
        match = candidates[0] if candidates else None
        if match is not None:
            remaining.remove(match)
        pairs.append((child, match))
    mentioned = set(child.tag for child in want)
    extra = []
    for elem in remaining:
        if want.tag == 'devices':
            removed = elem.tag not in IMPLICIT_DEVICES
        elif want.tag == 'domain' and elem.tag in USER_ONLY_ELEMENTS:
            removed = True
        else:
            removed = elem.tag in mentioned
        extra.append((elem, removed))
    return pairs, extra


def project(desired, current, aliases=None):
    """The definition libvirt would store for a desired full XML: what check mode shows as 'after'."""
    result = copy.deepcopy(desired)
    _fill(result, current, aliases or {})
    memory = result.find('memory')
    if memory is not None and desired.find('currentMemory') is None:
        _remove_all(result, 'currentMemory')  # libvirt starts a guest with all of its memory
        elem = ET.Element('currentMemory', {'unit': 'KiB'})
        elem.text = memory.text
        result.insert(list(result).index(memory) + 1, elem)
    return result


def _fill(want, have, aliases):
    if want.tag in MEMORY_ELEMENTS:
        want.text = str(memory_kib(want))
        want.attrib.clear()
        want.set('unit', 'KiB')
        return
    if want.tag == 'type' and want.get('machine'):
        want.set('machine', canonical_machine(want.get('machine'), aliases))
    if have is None:
        return
    merged = dict((key, want.get(key, value)) for key, value in have.attrib.items())
    merged.update(want.attrib)
    want.attrib.clear()
    want.attrib.update(merged)
    pairs, extra = _pair_children(want, have)
    for child, match in pairs:
        _fill(child, match, aliases)
    order = list(have)
    for elem, removed in extra:
        if removed:
            continue
        position = len(want)
        for index, sibling in enumerate(want):
            matched = [m for c, m in pairs if c is sibling]
            if matched and matched[0] is not None and order.index(matched[0]) > order.index(elem):
                position = index
                break
        want.insert(position, copy.deepcopy(elem))


def _same_identity(want, have):
    """Elements that may appear several times are paired by what identifies them."""
    if want.tag == 'controller':
        return want.get('type') == have.get('type') and _same_value(want.get('index', '0'), have.get('index', '0'))
    if want.tag == 'input':
        return want.get('type') == have.get('type') and want.get('bus') in (None, have.get('bus'))
    if want.tag == 'disk' and want.find('target') is not None and have.find('target') is not None:
        return want.find('target').get('dev') == have.find('target').get('dev')
    if want.tag == 'interface' and interface_mac(want) and interface_mac(have):
        return interface_mac(want) == interface_mac(have)
    if want.tag in ('feature', 'boot'):
        return want.attrib == have.attrib
    return True


def _label(elem):
    for key in ('dev', 'type', 'name'):
        if elem.get(key) and elem.tag not in ('memory', 'vcpu'):
            return "%s[@%s='%s']" % (elem.tag, key, elem.get(key))
    target = elem.find('target') if elem.tag == 'disk' else None
    if target is not None and target.get('dev'):
        return "disk[target='%s']" % target.get('dev')
    return elem.tag


# --- reading -----------------------------------------------------------------------------------

def summarize(root):
    """The settings a user reads back, and that decide whether a running guest needs a restart."""
    os_elem = root.find('os')
    os_type = os_elem.find('type') if os_elem is not None else None
    cpu = root.find('cpu')
    devices = root.find('devices')
    if devices is None:
        devices = ET.Element('devices')
    memory = root.find('memory')
    current_memory = root.find('currentMemory')
    metadata = domain_metadata.describe(root)
    return {
        'domain_type': root.get('type'),
        'memory_mib': memory_kib(memory) // 1024 if memory is not None else None,
        'current_memory_mib': memory_kib(current_memory) // 1024 if current_memory is not None else None,
        'vcpus': int(root.findtext('vcpu') or 1),
        'arch': os_type.get('arch') if os_type is not None else None,
        'machine': os_type.get('machine') if os_type is not None else None,
        'firmware': firmware_of(root),
        'cpu_mode': (cpu.get('mode') or 'custom') if cpu is not None else None,
        'cpu_model': cpu.findtext('model') if cpu is not None else None,
        'boot': {
            'devices': [elem.get('dev') for elem in os_elem.findall('boot')] if os_elem is not None else [],
            'kernel': os_elem.findtext('kernel') if os_elem is not None else None,
            'initrd': os_elem.findtext('initrd') if os_elem is not None else None,
            'cmdline': os_elem.findtext('cmdline') if os_elem is not None else None,
        },
        'disks': [_summarize_disk(elem) for elem in devices.findall('disk')],
        'interfaces': [_summarize_interface(elem) for elem in devices.findall('interface')],
        'graphics': [{'type': elem.get('type'), 'port': int(elem.get('port') or -1),
                      'listen': elem.get('listen')} for elem in devices.findall('graphics')],
        'serial_console': devices.find('serial') is not None,
        'tags': metadata['tags'],
        'metadata': metadata['metadata'],
    }


def _summarize_disk(elem):
    source = disk_source(elem)
    target = elem.find('target')
    driver = elem.find('driver')
    return {
        'device': elem.get('device', 'disk'),
        'type': elem.get('type'),
        'source': source[1] if source else None,
        'target': target.get('dev') if target is not None else None,
        'bus': target.get('bus') if target is not None else None,
        'format': driver.get('type') if driver is not None else None,
        'readonly': elem.find('readonly') is not None,
    }


def _summarize_interface(elem):
    kind, name = interface_source(elem)
    model = elem.find('model')
    return {'type': kind, 'source': name, 'mac': interface_mac(elem),
            'model': model.get('type') if model is not None else None}


def restart_differences(live, inactive):
    """Settings of the next boot's definition that the running guest does not have yet."""
    now, later = summarize(live), summarize(inactive)
    keys = ('domain_type', 'memory_mib', 'vcpus', 'machine', 'firmware', 'cpu_mode', 'cpu_model', 'boot', 'disks',
            'interfaces', 'graphics', 'serial_console')
    if later['cpu_mode'] in ('host-model', 'host-passthrough'):
        # A started guest shows the CPU the host mode expanded to, not the mode it was defined with.
        keys = tuple(key for key in keys if key not in ('cpu_mode', 'cpu_model'))
    changed = []
    for key in keys:
        left, right = now[key], later[key]
        if key == 'graphics':
            left = [dict(item, port=None) for item in left]  # an autoport guest shows the port it got
            right = [dict(item, port=None if item['port'] == -1 else item['port']) for item in right]
        if left != right:
            changed.append(key)
    changed.extend(unsummarized_differences(live, inactive, seed_unknown_ok=True))
    return changed


def unsummarized_differences(before, after, seed_unknown_ok=False):
    """Settings summarize() leaves out that differ: 'guest_agent' (the channel) and 'cloud_init' (the digest of
    the seed). seed_unknown_ok: a side without a digest (a guest booted before digests were recorded) is no
    difference."""
    changed = ['guest_agent'] if has_guest_agent(before) != has_guest_agent(after) else []
    seeds = domain_metadata.seed_digest(before), domain_metadata.seed_digest(after)
    if seeds[0] != seeds[1] and not (seed_unknown_ok and None in seeds):
        changed.append('cloud_init')
    return changed
