# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VirtualBox VMs through VBoxManage: read one VM (showvminfo --machinereadable), compare the settings the
task manages, apply the differences with as few calls as possible, and drive the power state.

The pure part (``describe``, ``normalize``, ``plan``) works on parsed VBoxManage output and is what the unit
tests exercise; ``VMManager`` runs the commands, each change through ``Result.perform`` (``_contract.py``).

Facts about VirtualBox 7.2 this relies on (checked against the real VBoxManage):
- showvminfo reports the OS type by its description (``Debian (64-bit)``), not its ID: ``list ostypes`` maps them.
- ``firmware`` is BIOS, EFI, EFI32 or EFI64; a NIC that exists but is not attached is ``null``, a missing one
  ``none``; the attachment's name is in bridgeadapterN, hostonlyadapterN, intnetN or nat-networkN.
- Storage attachments are ``"<controller>-<port>-<device>"=<path|emptydrive|none>``; a DVD slot also has
  ``<controller>-IsEjected-<port>-<device>``. A VM with snapshots runs on differencing images in its snapshot
  folder: the attached path is then a child of the image the user attached.
- ``unregistervm --delete`` fails half-way (VM unregistered, files kept) when an image is the parent of another
  VM's disk (a linked clone): such media are kept and the VM's own files deleted one by one instead.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time

from ansible_collections.virtops.hypervisor.plugins.module_utils._vboxmanage import (
    DRIVER_DEVICE, VBoxFailure, VBoxManage, about, parse_import_dry_run, parse_snapshots)

MAX_NICS = 8
NIC_TYPES = ('nat', 'bridged', 'hostonly', 'intnet', 'natnetwork', 'null', 'none')
NIC_MODELS = ('Am79C970A', 'Am79C973', 'Am79C960', '82540EM', '82543GC', '82545EM', 'virtio')
# Which attachment name a NIC type needs, and the showvminfo key / modifyvm flag holding it.
NIC_ATTACHMENT = {
    'bridged': ('adapter', 'bridgeadapter'),
    'hostonly': ('adapter', 'hostonlyadapter'),
    'intnet': ('network', 'intnet'),
    'natnetwork': ('network', 'nat-network'),
}
FIRMWARE = {'BIOS': 'bios', 'EFI': 'efi', 'EFI32': 'efi32', 'EFI64': 'efi64'}
BUSES = ('ide', 'sata', 'scsi', 'sas', 'floppy', 'usb', 'pcie', 'virtio')
# showvminfo's controller chipset -> the bus `storagectl --add` takes.
CHIPSET_BUS = {
    'PIIX3': 'ide', 'PIIX4': 'ide', 'ICH6': 'ide', 'IntelAhci': 'sata', 'LsiLogic': 'scsi', 'BusLogic': 'scsi',
    'LsiLogicSas': 'sas', 'I82078': 'floppy', 'USB': 'usb', 'NVMe': 'pcie', 'VirtioSCSI': 'virtio',
}
BOOT_DEVICES = ('disk', 'dvd', 'net', 'floppy', 'none')
POWER_STATES = ('running', 'poweroff', 'acpi_shutdown', 'paused', 'saved')
OFF_STATES = ('poweroff', 'aborted')
MAC_PATTERN = re.compile(r'^[0-9A-F]{12}$')
DRIVER_HELP = ('%s does not exist: the VirtualBox kernel driver (vboxdrv) is not loaded on this host, so no VM can '
               'start. Install virtualbox-dkms and the kernel headers of the running kernel (linux-headers-$(uname '
               '-r)), then load it with modprobe vboxdrv (the virtops.hypervisor.virtualbox_host role does this)'
               % DRIVER_DEVICE)


# --- reading --------------------------------------------------------------------------------------------

def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def describe(values, ostypes=None, media=None):
    """A VM as the modules return it, from showvminfo --machinereadable values.

    ostypes: [(id, description)] to turn the description showvminfo prints back into the ID; media: parsed
    `list --long hdds` to add each disk's format, virtual size and base image.
    """
    by_description = dict((desc, ident) for ident, desc in (ostypes or []))
    by_uuid = dict((medium['uuid'], medium) for medium in (media or []))
    ostype_description = values.get('ostype')
    snapshots, current = parse_snapshots(values)
    info = {
        'name': values.get('name'),
        'uuid': values.get('UUID'),
        'state': values.get('VMState'),
        'ostype': by_description.get(ostype_description, ostype_description),
        'ostype_description': ostype_description,
        'memory': _int(values.get('memory')),
        'cpus': _int(values.get('cpus')),
        'firmware': FIRMWARE.get(values.get('firmware'), (values.get('firmware') or '').lower() or None),
        'description': values.get('description', ''),
        'nics': read_nics(values),
        'storage_controllers': read_controllers(values, by_uuid),
        'boot_order': [values.get('boot%d' % i, 'none') for i in range(1, 5)],
        'snapshots': snapshots,
        'current_snapshot': current,
        'config_file': values.get('CfgFile'),
        'snapshot_folder': values.get('SnapFldr'),
    }
    return info


def read_nics(values):
    """The 8 network adapters (index = position - 1), each with type, adapter or network, model, mac, cable."""
    nics = []
    for index in range(1, MAX_NICS + 1):
        kind = values.get('nic%d' % index, 'none')
        nic = {'type': kind}
        if kind != 'none':
            if kind in NIC_ATTACHMENT:
                field, key = NIC_ATTACHMENT[kind]
                nic[field] = values.get('%s%d' % (key, index))
            nic['model'] = values.get('nictype%d' % index)
            nic['mac'] = values.get('macaddress%d' % index)
            nic['cable_connected'] = values.get('cableconnected%d' % index) == 'on'
        nics.append(nic)
    return nics


def _attached_image(chain, snapshot_folder):
    """The image the user attached: a VM with snapshots (or a linked clone) runs on differencing images in its
    snapshot folder; walk up to the first image outside it."""
    for medium in chain:
        location = medium['location'] or ''
        if not (snapshot_folder and location.startswith(snapshot_folder.rstrip('/') + '/')
                and medium['parent'] is not None):
            return location
    return chain[-1]['location']


def read_controllers(values, media_by_uuid=None):
    """Storage controllers in showvminfo order with their attachments (empty slots left out)."""
    media_by_uuid = media_by_uuid or {}
    snapshot_folder = values.get('SnapFldr')
    controllers = []
    index = 0
    while 'storagecontrollername%d' % index in values:
        name = values['storagecontrollername%d' % index]
        chipset = values.get('storagecontrollertype%d' % index)
        bus = CHIPSET_BUS.get(chipset, (chipset or '').lower())
        controller = {'name': name, 'type': bus, 'chipset': chipset,
                      'port_count': _int(values.get('storagecontrollerportcount%d' % index)),
                      'bootable': values.get('storagecontrollerbootable%d' % index) == 'on', 'disks': []}
        prefix = name + '-'
        for key, value in values.items():
            if not key.startswith(prefix):
                continue
            match = re.match(r'^(\d+)-(\d+)$', key[len(prefix):])
            if not match or value == 'none':
                continue
            port, device = int(match.group(1)), int(match.group(2))
            if bus == 'floppy':
                kind = 'fdd'
            elif '%sIsEjected-%d-%d' % (prefix, port, device) in values:
                kind = 'dvddrive'
            else:
                kind = 'hdd'
            uuid = values.get('%sImageUUID-%d-%d' % (prefix, port, device))
            disk = {'port': port, 'device': device, 'type': kind, 'medium': value, 'uuid': uuid}
            if kind == 'hdd':
                chain = medium_chain(media_by_uuid, uuid)
                if chain:
                    disk['format'] = chain[0]['format']
                    disk['virtual_size'] = chain[0]['virtual_size']
                    disk['base'] = _attached_image(chain, snapshot_folder)
            controller['disks'].append(disk)
        controller['disks'].sort(key=lambda disk: (disk['port'], disk['device']))
        controllers.append(controller)
        index += 1
    return controllers


def medium_chain(media_by_uuid, uuid):
    """[medium, its parent, ..., base image] of a registered medium; [] when unknown."""
    chain = []
    while uuid and uuid in media_by_uuid and len(chain) < 1000:
        chain.append(media_by_uuid[uuid])
        uuid = media_by_uuid[uuid]['parent']
    return chain


def power_state(info):
    return info['state'] if info else 'absent'


# --- what was asked -------------------------------------------------------------------------------------

def normalize_mac(value, where):
    mac = re.sub(r'[:\-.]', '', value or '').upper()
    if not MAC_PATTERN.match(mac):
        raise VBoxFailure("%s '%s' is not a MAC address: use 12 hex digits, with or without colons "
                          "(08:00:27:12:34:56)" % (where, value))
    if int(mac[1], 16) & 1:
        raise VBoxFailure("%s '%s' is a multicast address: the first octet must be even (VirtualBox's own "
                          "prefix is 08:00:27)" % (where, value))
    return mac


def normalize(params, ostypes=None):
    """The settings the task manages, checked and in VBoxManage's terms; raises VBoxFailure naming the option.

    Returns a dict with only the settings that were given: ostype, memory, cpus, firmware, description, nics
    (a list of 8, padded with type none), storage_controllers, boot_order (padded to 4).
    """
    wanted = {}
    if params.get('ostype') is not None:
        known = dict((ident.lower(), ident) for ident, _desc in (ostypes or []))
        if ostypes is not None and params['ostype'].lower() not in known:
            close = sorted(ident for ident in known.values() if ident.lower().startswith(params['ostype'][:3].lower()))
            raise VBoxFailure("ostype '%s' is not a guest OS type this VirtualBox knows (VBoxManage list ostypes)%s"
                              % (params['ostype'], ': similar ones are %s' % ', '.join(close[:12]) if close else ''))
        wanted['ostype'] = known.get(params['ostype'].lower(), params['ostype'])
    if params.get('memory') is not None:
        if params['memory'] < 4:
            raise VBoxFailure('memory must be at least 4 (MiB), not %d' % params['memory'])
        wanted['memory'] = params['memory']
    if params.get('cpus') is not None:
        if not 1 <= params['cpus'] <= 64:
            raise VBoxFailure('cpus must be between 1 and 64, not %d' % params['cpus'])
        wanted['cpus'] = params['cpus']
    if params.get('firmware') is not None:
        wanted['firmware'] = params['firmware']
    if params.get('description') is not None:
        wanted['description'] = params['description']
    if params.get('nics') is not None:
        wanted['nics'] = _normalize_nics(params['nics'])
    if params.get('storage_controllers') is not None:
        wanted['storage_controllers'] = _normalize_controllers(params['storage_controllers'])
    if params.get('boot_order') is not None:
        order = list(params['boot_order'])
        if len(order) > 4:
            raise VBoxFailure('boot_order has %d entries: VirtualBox has 4 boot positions' % len(order))
        for i, device in enumerate(order):
            if device not in BOOT_DEVICES:
                raise VBoxFailure("boot_order[%d] '%s' is not one of %s" % (i, device, ', '.join(BOOT_DEVICES)))
        wanted['boot_order'] = order + ['none'] * (4 - len(order))
    return wanted


def _normalize_nics(items):
    if len(items) > MAX_NICS:
        raise VBoxFailure('nics has %d entries: VirtualBox VMs have %d network adapters' % (len(items), MAX_NICS))
    nics = []
    for i, item in enumerate(items):
        where = 'nics[%d]' % i
        kind = item.get('type')
        if kind not in NIC_TYPES:
            raise VBoxFailure("%s.type '%s' is not one of %s" % (where, kind, ', '.join(NIC_TYPES)))
        nic = {'type': kind}
        needed = NIC_ATTACHMENT.get(kind, (None, None))[0]
        for field in ('adapter', 'network'):
            if item.get(field) not in (None, '') and field != needed:
                raise VBoxFailure('%s.%s is not used with type %s (%s)' % (
                    where, field, kind, 'it takes %s' % needed if needed else 'it takes neither adapter nor network'))
        if needed:
            if not item.get(needed):
                raise VBoxFailure('%s.%s is required with type %s (%s)' % (
                    where, needed, kind, 'a host interface such as eth0' if needed == 'adapter' else
                    'the name of the %s network' % ('internal' if kind == 'intnet' else 'NAT')))
            nic[needed] = item[needed]
        if kind == 'none':
            for field in ('model', 'mac', 'cable_connected'):
                if item.get(field) is not None:
                    raise VBoxFailure('%s.%s is not used with type none (the adapter is removed)' % (where, field))
        if item.get('model') is not None:
            if item['model'] not in NIC_MODELS:
                raise VBoxFailure("%s.model '%s' is not one of %s" % (where, item['model'], ', '.join(NIC_MODELS)))
            nic['model'] = item['model']
        if item.get('mac') is not None:
            nic['mac'] = normalize_mac(item['mac'], where + '.mac')
        if item.get('cable_connected') is not None:
            nic['cable_connected'] = bool(item['cable_connected'])
        nics.append(nic)
    return nics + [{'type': 'none'} for _i in range(MAX_NICS - len(nics))]


def _normalize_controllers(items):
    controllers, names = [], set()
    for i, item in enumerate(items):
        where = 'storage_controllers[%d]' % i
        name = item.get('name')
        if not name:
            raise VBoxFailure('%s.name is required' % where)
        if name in names:
            raise VBoxFailure("%s.name '%s' is given twice" % (where, name))
        names.add(name)
        controller = {'name': name, 'disks': []}
        if item.get('type') is not None:
            bus = 'pcie' if item['type'] == 'nvme' else item['type']
            if bus not in BUSES:
                raise VBoxFailure("%s.type '%s' is not one of %s" % (where, item['type'], ', '.join(BUSES + ('nvme',))))
            controller['type'] = bus
        if item.get('port_count') is not None:
            if item['port_count'] < 1:
                raise VBoxFailure('%s.port_count must be 1 or more' % where)
            controller['port_count'] = item['port_count']
        if item.get('bootable') is not None:
            controller['bootable'] = bool(item['bootable'])
        slots = set()
        for j, disk in enumerate(item.get('disks') or []):
            dwhere = '%s.disks[%d]' % (where, j)
            port, device = disk.get('port'), disk.get('device') or 0
            if port is None or port < 0 or device < 0:
                raise VBoxFailure('%s.port (and device) must be 0 or more' % dwhere)
            if controller.get('port_count') is not None and port >= controller['port_count']:
                raise VBoxFailure('%s.port %d is beyond the port_count %d of controller %s (ports count from 0)'
                                  % (dwhere, port, controller['port_count'], name))
            if (port, device) in slots:
                raise VBoxFailure('%s: port %d device %d of controller %s is given twice' % (dwhere, port, device, name))
            slots.add((port, device))
            kind = disk.get('type') or 'hdd'
            entry = {'port': port, 'device': device, 'type': kind}
            if disk.get('state', 'present') == 'absent':
                entry['type'] = None
                entry['medium'] = 'none'
            else:
                medium = disk.get('medium')
                if medium in (None, '', 'emptydrive'):
                    if kind == 'hdd':
                        raise VBoxFailure('%s.medium is required for a hdd (the path of its image)' % dwhere)
                    medium = 'emptydrive'
                else:
                    if not os.path.isabs(medium):
                        raise VBoxFailure("%s.medium '%s' must be an absolute path" % (dwhere, medium))
                    medium = os.path.normpath(medium)
                    if not os.path.isfile(medium):
                        raise VBoxFailure('%s.medium %s does not exist%s' % (
                            dwhere, medium, ': create it first (VBoxManage createmedium disk, or '
                            'virtops.hypervisor.qemu_image with format vdi)' if kind == 'hdd' else ''))
                entry['medium'] = medium
            controller['disks'].append(entry)
        controllers.append(controller)
    return controllers


# --- comparing ------------------------------------------------------------------------------------------

def _same_medium(have, want):
    if have == want:
        return True
    if have in ('none', 'emptydrive') or want in ('none', 'emptydrive'):
        return False
    return os.path.realpath(have) == os.path.realpath(want)


def blank(name):
    """A VM that does not exist yet, to validate a request against before createvm."""
    return {'name': name, 'ostype': None, 'memory': None, 'cpus': None, 'firmware': None, 'description': None,
            'nics': [{'type': 'none'} for _i in range(MAX_NICS)], 'storage_controllers': [],
            'boot_order': ['none'] * 4}


def wanted_view(wanted):
    """The managed settings of a new VM for the diff's after (trailing absent adapters left out)."""
    view = dict(wanted)
    if 'nics' in view:
        nics = list(view['nics'])
        while nics and nics[-1] == {'type': 'none'}:
            nics.pop()
        view['nics'] = nics
    return view


def plan(info, wanted):
    """Compare an existing VM (describe() output) with what normalize() returned.

    Returns (differences, commands, before, after): differences as "memory: 1024 -> 2048" strings; commands as
    argv lists after `VBoxManage` (storagectl, storageattach, then one modifyvm), for the VM's name; before and
    after the managed settings (without state) for the diff.
    """
    differences, modify, storage = [], [], []
    before, after = {}, {}
    name = info['name']
    for key, flag in (('ostype', '--ostype'), ('memory', '--memory'), ('cpus', '--cpus'),
                      ('firmware', '--firmware'), ('description', '--description')):
        if key not in wanted:
            continue
        have, want = info[key], wanted[key]
        same = have.lower() == want.lower() if key == 'ostype' and have else have == want
        before[key] = have
        after[key] = have if same else want
        if not same:
            differences.append('%s: %s -> %s' % (key, _show(have), _show(want)))
            modify += [flag, want]
    if 'nics' in wanted:
        nic_args, nic_before, nic_after = _plan_nics(info['nics'], wanted['nics'], differences)
        modify += nic_args
        before['nics'], after['nics'] = nic_before, nic_after
    if 'storage_controllers' in wanted:
        storage, before['storage_controllers'], after['storage_controllers'] = _plan_storage(
            name, info['storage_controllers'], wanted['storage_controllers'], differences)
    if 'boot_order' in wanted:
        before['boot_order'], after['boot_order'] = list(info['boot_order']), list(wanted['boot_order'])
        for i, (have, want) in enumerate(zip(info['boot_order'], wanted['boot_order'])):
            if have != want:
                modify += ['--boot%d' % (i + 1), want]
        if info['boot_order'] != wanted['boot_order']:
            differences.append('boot_order: %s -> %s' % (','.join(info['boot_order']), ','.join(wanted['boot_order'])))
    commands = list(storage)
    if modify:
        commands.append(['modifyvm', name] + modify)
    return differences, commands, before, after


def _show(value):
    if value is None:
        return '(unset)'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str) and ('\n' in value or value == '' or ' ' in value):
        return repr(value)
    return str(value)


def _plan_nics(actual, wanted, differences):
    args, before, after = [], [], []
    for i, (have, want) in enumerate(zip(actual, wanted)):
        slot = i + 1
        nic_before = dict((key, have.get(key)) for key in want)
        nic_after = dict(nic_before)
        if have['type'] == 'none':
            nic_before = {'type': 'none'}
        for key in want:
            have_value, want_value = have.get(key), want[key]
            if key == 'mac' and have_value:
                have_value = have_value.upper()
            if have_value == want_value:
                continue
            nic_after[key] = want_value
            differences.append('nics[%d].%s: %s -> %s' % (i, key, _show(have.get(key)), _show(want_value)))
            if key == 'type':
                args += ['--nic%d' % slot, want_value]
            elif key in ('adapter', 'network'):
                args += ['--%s%d' % (NIC_ATTACHMENT[want['type']][1], slot), want_value]
            elif key == 'model':
                args += ['--nictype%d' % slot, want_value]
            elif key == 'mac':
                args += ['--macaddress%d' % slot, want_value]
            elif key == 'cable_connected':
                args += ['--cableconnected%d' % slot, 'on' if want_value else 'off']
        if have['type'] != 'none' or want['type'] != 'none':
            before.append(nic_before)
            after.append(nic_after)
        else:
            before.append({'type': 'none'})
            after.append({'type': 'none'})
    # Trailing adapters that are none before and after say nothing: leave them out of the diff.
    while before and before[-1] == {'type': 'none'} and after[-1] == {'type': 'none'}:
        before.pop()
        after.pop()
    return args, before, after


def _plan_storage(name, actual, wanted, differences):
    commands, before, after = [], [], []
    by_name = dict((ctl['name'], ctl) for ctl in actual)
    for i, want in enumerate(wanted):
        where = 'storage_controllers[%d]' % i
        have = by_name.get(want['name'])
        ctl_args = []
        if have is None:
            if 'type' not in want:
                raise VBoxFailure("%s.type is required: VM '%s' has no storage controller '%s' to create"
                                  % (where, name, want['name']))
            differences.append('%s: add %s controller %s' % (where, want['type'], want['name']))
            ctl_args = ['--add', want['type']]
            have = {'name': want['name'], 'type': want['type'], 'port_count': None, 'bootable': None, 'disks': []}
            before.append({'name': want['name'], 'exists': False})
        else:
            if 'type' in want and want['type'] != have['type']:
                raise VBoxFailure("%s.type: controller '%s' of VM '%s' is %s (%s), not %s; VirtualBox cannot change a "
                                  "controller's bus: use another name, or remove the controller first"
                                  % (where, want['name'], name, have['type'], have['chipset'], want['type']))
            before.append(None)
        ctl_before = {'name': want['name'], 'type': have['type']}
        ctl_after = {'name': want['name'], 'type': want.get('type', have['type'])}
        for key, flag in (('port_count', '--portcount'), ('bootable', '--bootable')):
            if key not in want:
                continue
            ctl_before[key] = have[key]
            ctl_after[key] = want[key]
            if have[key] != want[key]:
                if have[key] is not None:
                    differences.append('%s.%s: %s -> %s' % (where, key, _show(have[key]), _show(want[key])))
                ctl_args += [flag, ('on' if want[key] else 'off') if key == 'bootable' else want[key]]
        if ctl_args:
            commands.append(['storagectl', name, '--name', want['name']] + ctl_args)
        slots = dict(((disk['port'], disk['device']), disk) for disk in have['disks'])
        ctl_before['disks'], ctl_after['disks'] = [], []
        for j, disk in enumerate(want['disks']):
            found = slots.get((disk['port'], disk['device']))
            have_medium = (found.get('base') or found['medium']) if found else 'none'
            have_type = found['type'] if found else None
            ctl_before['disks'].append({'port': disk['port'], 'device': disk['device'], 'type': have_type,
                                        'medium': have_medium})
            ctl_after['disks'].append({'port': disk['port'], 'device': disk['device'], 'type': disk['type'],
                                       'medium': disk['medium']})
            if _same_medium(have_medium, disk['medium']) and (disk['type'] is None or have_type == disk['type']):
                continue
            differences.append('%s.disks[%d] (%s port %d device %d): %s -> %s' % (
                where, j, want['name'], disk['port'], disk['device'],
                _slot_text(have_type, have_medium), _slot_text(disk['type'], disk['medium'])))
            argv = ['storageattach', name, '--storagectl', want['name'], '--port', disk['port'],
                    '--device', disk['device']]
            if disk['medium'] == 'none':
                argv += ['--medium', 'none']
            else:
                if found is not None and have_type != disk['type']:
                    # Another kind of drive in the slot: empty it first (storageattach cannot swap the kind).
                    commands.append(argv + ['--medium', 'none'])
                argv += ['--type', disk['type'], '--medium', disk['medium']]
            commands.append(argv)
        before[-1] = before[-1] or ctl_before
        after.append(ctl_after)
    return commands, before, after


def _slot_text(kind, medium):
    if medium == 'none':
        return 'empty'
    return '%s %s' % (kind, medium)


# --- acting ---------------------------------------------------------------------------------------------

class VMManager(object):
    """Bring one VM to the asked state, recording what it does in a Result (contract.py)."""

    def __init__(self, module, result):
        self.params = module.params
        self.result = result
        self.check_mode = result.check_mode
        self.name = self.params['name']
        result.set(name=self.name)
        self.vbox = VBoxManage(module)
        self._ostypes = None

    # ----- helpers

    def ostypes(self):
        if self._ostypes is None:
            self._ostypes = self.vbox.ostypes()
        return self._ostypes

    def read(self):
        values = self.vbox.showvminfo(self.name)
        if values is None:
            return None
        return describe(values, self.ostypes(), self.vbox.hdds())

    def perform(self, action, argv):
        """One VBoxManage call that changes the VM (skipped in check mode), recorded once it succeeded."""
        self.result.perform(action, self.vbox.run, argv)

    def _run_all(self, commands):
        """Several calls of one action: when a later one fails, the earlier ones did change the VM."""
        for done, argv in enumerate(commands):
            try:
                self.vbox.run(argv)
            except VBoxFailure:
                if done:
                    self.result.mark_changed()
                raise

    # ----- main flow

    def run(self):
        about("VM '%s'" % self.name, self._run)

    def _run(self):
        params = self.params
        result = self.result
        state = params['state']
        wanted = normalize(params, self.ostypes() if params.get('ostype') is not None else None)
        info = self.read()
        self._check_request(info, state)
        state_before = power_state(info)
        if state == 'absent':
            self._absent(info)
            result.add_diff({'state': state_before}, {'state': 'absent'})
            result.set(vm=None, state='absent')
            return

        target = self._target_state(info, state)
        needs_start = target in ('running', 'paused') and state_before not in ('running', 'paused')
        if needs_start and not self.vbox.driver_present():
            raise VBoxFailure("cannot bring VM '%s' to state %s: %s. Nothing was changed."
                              % (self.name, state, DRIVER_HELP))

        stopped = False
        if info is None:
            if not (params.get('import_from') or params.get('clone_from')):
                plan(blank(self.name), wanted)  # validates the request before anything is created
            before, after = {'state': 'absent'}, wanted_view(wanted)
            after['state'] = target
            info = self._create(wanted)
        else:
            differences, commands, before, after = plan(info, wanted)
            before['state'], after['state'] = state_before, target
            for line in differences:
                result.differ(line)
            if commands and state_before not in OFF_STATES:
                if state not in ('poweroff', 'acpi_shutdown'):
                    raise VBoxFailure("VM '%s' is %s: its settings can only change while it is powered off (%s). "
                                      "Use state: poweroff or acpi_shutdown, then start it again. Nothing was changed."
                                      % (self.name, state_before, '; '.join(differences)))
                # Stop first, then change the settings (a running or saved VM is locked).
                self._power(info, state)
                stopped = True
            if commands:
                result.perform('modify', self._run_all, commands)
        if state in POWER_STATES and not stopped:
            # Settings change only while the VM is off, so the power state read first still holds.
            self._power(info or {'state': 'poweroff'}, state)
        if params.get('export_to'):
            self._export()
        result.add_diff(_ordered(before), _ordered(after))
        # Read the VM again only when this run changed it.
        vm = info if self.check_mode or not result.actions else self.read()
        result.set(vm=vm, state=target if self.check_mode else power_state(vm))

    def _check_request(self, info, state):
        params = self.params
        if params.get('timeout') is not None and params['timeout'] < 0:
            raise VBoxFailure('timeout must be 0 or more seconds')
        if state == 'absent':
            for option in ('import_from', 'clone_from', 'export_to'):
                if params.get(option):
                    raise VBoxFailure('%s cannot be used with state: absent' % option)
        if params.get('clone_mode') == 'linked' and params.get('clone_from') and not params.get('clone_snapshot'):
            raise VBoxFailure('clone_mode: linked needs clone_snapshot (VirtualBox makes linked clones only from a '
                              'snapshot of the source VM)')
        if params.get('export_to'):
            if os.path.splitext(params['export_to'])[1].lower() not in ('.ova', '.ovf'):
                raise VBoxFailure("export_to '%s' must end with .ova (one file) or .ovf" % params['export_to'])
            if not os.path.isabs(params['export_to']):
                raise VBoxFailure("export_to '%s' must be an absolute path" % params['export_to'])
            if not os.path.isdir(os.path.dirname(params['export_to'])):
                raise VBoxFailure('export_to: directory %s does not exist' % os.path.dirname(params['export_to']))
            if state in ('running', 'paused'):
                raise VBoxFailure('export_to: a %s VM cannot be exported; use state poweroff, acpi_shutdown or saved'
                                  % state)
            if state == 'present' and info is not None and info['state'] in ('running', 'paused'):
                raise VBoxFailure("export_to: VM '%s' is %s and cannot be exported; power it off first (state: "
                                  "poweroff or acpi_shutdown)" % (self.name, info['state']))
        if info is None and state == 'saved':
            raise VBoxFailure("VM '%s' does not exist yet: a new VM is powered off and has no state to save"
                              % self.name)
        if info is not None and state == 'saved' and info['state'] in OFF_STATES:
            raise VBoxFailure("VM '%s' is %s: there is no running state to save (state: saved needs a running or "
                              "paused VM)" % (self.name, info['state']))
        if info is None and params.get('import_from') and not os.path.isfile(params['import_from']):
            raise VBoxFailure('import_from: %s does not exist' % params['import_from'])

    def _target_state(self, info, state):
        if state in ('present',):
            return power_state(info) if info else 'poweroff'
        if state == 'acpi_shutdown':
            return 'poweroff'
        return state

    # ----- create, import, clone

    def _create(self, wanted):
        """Create, import or clone the VM with the settings on top; the VM read afterwards (None in check mode)."""
        params = self.params
        if params.get('import_from'):
            action, argv = 'import', self._import_argv(wanted)
        elif params.get('clone_from'):
            action, argv = 'clone', self._clone_argv()
        else:
            action, argv = 'create', ['createvm', '--name', self.name, '--register']
            if wanted.get('ostype'):
                argv += ['--ostype', wanted['ostype']]
            if params.get('base_folder'):
                argv += ['--basefolder', params['base_folder']]
        info = self.result.perform(action, self._make, argv, wanted)
        self.result.differ('state: absent -> present (%s)' % action)
        return info

    def _make(self, argv, wanted):
        """Run the create, import or clone, then apply the settings; a VM whose settings fail is removed again."""
        self.vbox.run(argv)
        info = self.read()
        try:
            for command in plan(info, wanted)[1]:
                self.vbox.run(command)
        except VBoxFailure as exc:
            self.vbox.run(['unregistervm', self.name, '--delete'], check=False)
            raise VBoxFailure('%s; the new VM %s was removed again' % (exc, self.name))
        return info

    def _import_argv(self, wanted):
        params = self.params
        source = params['import_from']
        _rc, out, _err = self.vbox.run(['import', source, '-n'])
        appliance = parse_import_dry_run(out)
        if not appliance:
            raise VBoxFailure('import_from: %s holds no virtual system VirtualBox can import' % source)
        argv = ['import', source, '--vsys', '0', '--vmname', self.name]
        for key in ('ostype', 'memory', 'cpus', 'description'):
            if key in wanted:
                argv += ['--' + key, wanted[key]]
        if params.get('base_folder'):
            argv += ['--basefolder', params['base_folder']]
        self.result.set(appliance=appliance)
        return argv

    def _clone_argv(self):
        params = self.params
        source = self.vbox.showvminfo(params['clone_from'])
        if source is None:
            raise VBoxFailure("clone_from: VM '%s' does not exist" % params['clone_from'])
        argv = ['clonevm', params['clone_from'], '--name', self.name, '--register']
        if params.get('clone_snapshot'):
            names = [snap['name'] for snap in parse_snapshots(source)[0]]
            if params['clone_snapshot'] not in names:
                raise VBoxFailure("clone_snapshot: VM '%s' has no snapshot '%s' (it has: %s)"
                                  % (params['clone_from'], params['clone_snapshot'], ', '.join(names) or 'none'))
            argv += ['--snapshot', params['clone_snapshot']]
        if params.get('clone_mode') == 'linked':
            argv += ['--options', 'link']
        if params.get('base_folder'):
            argv += ['--basefolder', params['base_folder']]
        return argv

    # ----- power

    def _power(self, info, state):
        have = info['state']
        name = self.name
        if state == 'running':
            if have in OFF_STATES + ('saved',):
                self.perform('start', ['startvm', name, '--type', 'headless'])
            elif have == 'paused':
                self.perform('resume', ['controlvm', name, 'resume'])
        elif state == 'paused':
            if have in OFF_STATES + ('saved',):
                self.perform('start', ['startvm', name, '--type', 'headless'])
                self.perform('pause', ['controlvm', name, 'pause'])
            elif have == 'running':
                self.perform('pause', ['controlvm', name, 'pause'])
        elif state == 'saved':
            if have in ('running', 'paused'):
                self.perform('save', ['controlvm', name, 'savestate'])
        elif state == 'poweroff':
            if have in ('running', 'paused'):
                self.perform('poweroff', ['controlvm', name, 'poweroff'])
            elif have == 'saved':
                self.perform('discard_saved_state', ['discardstate', name])
        elif state == 'acpi_shutdown':
            if have == 'saved':
                self.perform('discard_saved_state', ['discardstate', name])
            elif have in ('running', 'paused'):
                self._acpi_shutdown(have)

    def _acpi_shutdown(self, have):
        name = self.name
        if have == 'paused':
            self.perform('resume', ['controlvm', name, 'resume'])
        self.perform('acpi_shutdown', ['controlvm', name, 'acpipowerbutton'])
        if self.check_mode:
            return
        deadline = time.time() + self.params['timeout']
        while time.time() < deadline:
            values = self.vbox.showvminfo(name)
            if values is None or values.get('VMState') in OFF_STATES:
                return
            time.sleep(1)
        if not self.params['force']:
            raise VBoxFailure("VM '%s' did not power off within %d seconds of the ACPI power button (the guest may "
                              "ignore it: no ACPI daemon, or still booting). Set force: true to power it off then, "
                              "or a longer timeout" % (name, self.params['timeout']))
        self.perform('poweroff', ['controlvm', name, 'poweroff'])

    def _wait_off(self, seconds):
        """After controlvm poweroff: wait until VirtualBox releases the VM's session (unregistering needs it)."""
        if self.check_mode:
            return
        deadline = time.time() + seconds
        while time.time() < deadline:
            values = self.vbox.showvminfo(self.name)
            if values is None or (values.get('VMState') in OFF_STATES and values.get('SessionName') is None):
                return
            time.sleep(0.5)

    # ----- export

    def _export(self):
        params = self.params
        path = params['export_to']
        if os.path.exists(path) and not params['force_export']:
            return
        self.result.set(export=path)
        fmt = params.get('export_format')
        flags = ['--' + fmt.replace('-', '').replace('.', '')] if fmt else []
        self.result.perform('export', self._export_atomically, path, flags)

    def _export_atomically(self, path, flags):
        """Export into a temporary directory next to path, then move the files into place (the .ovf/.ova last)."""
        directory = os.path.dirname(path)
        workdir = tempfile.mkdtemp(prefix='.%s.' % os.path.basename(path), suffix='.vbox_vm.tmp', dir=directory)
        try:
            target = os.path.join(workdir, os.path.basename(path))
            self.vbox.run(['export', self.name, '--output', target] + flags)
            # An .ovf export writes the disk images (and a manifest) next to it: move them first, the .ovf last.
            names = sorted(os.listdir(workdir), key=lambda item: item == os.path.basename(path))
            for item in names:
                os.rename(os.path.join(workdir, item), os.path.join(directory, item))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # ----- absent

    def _absent(self, info):
        if info is None:
            return
        name = self.name
        if info['state'] in ('running', 'paused'):
            self.perform('poweroff', ['controlvm', name, 'poweroff'])
            self._wait_off(30)
        if not self.params['delete_files']:
            self.perform('unregister', ['unregistervm', name])
            return
        media = self.vbox.hdds()
        own, kept = classify_media(info['uuid'], media, dict((uuid, vm) for vm, uuid in self.vbox.vms()))
        self.result.set(deleted_media=[medium['location'] for medium in own], kept_media=kept)
        if kept:
            for item in kept:
                self.result.warn("kept %s: %s" % (item['location'], item['reason']))
            self.perform('unregister', ['unregistervm', name])
            self.result.perform('delete_files', self._delete_own_files, info, own)
        else:
            # unregistervm --delete removes the files as well: one call, two actions.
            self.perform('unregister', ['unregistervm', name, '--delete'])
            self.result.perform('delete_files')

    def _delete_own_files(self, info, own):
        """After unregistervm: remove the VM's own images (children first) and its files."""
        registered = dict((medium['uuid'], medium) for medium in self.vbox.hdds())
        for medium in own:
            if medium['uuid'] in registered:
                self.vbox.run(['closemedium', 'disk', medium['uuid'], '--delete'], check=False)
            if os.path.exists(medium['location']):
                os.remove(medium['location'])
        config = info['config_file']
        folder = os.path.dirname(config)
        for path in (config, config + '-prev', os.path.splitext(config)[0] + '.nvram'):
            if os.path.exists(path):
                os.remove(path)
        snapshot_folder = info.get('snapshot_folder')
        if snapshot_folder and os.path.isdir(snapshot_folder):
            for item in os.listdir(snapshot_folder):
                if item.endswith('.sav'):
                    os.remove(os.path.join(snapshot_folder, item))
        logs = os.path.join(folder, 'Logs')
        if os.path.isdir(logs):
            shutil.rmtree(logs, ignore_errors=True)
        for directory in (info.get('snapshot_folder'), folder):
            if directory and os.path.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)


def classify_media(vm_uuid, media, vm_names=None):
    """(media only this VM uses, children first; [{location, reason}] of the media it shares with other VMs).

    A medium is shared when another VM uses it, or when a descendant of it is used by another VM (the base
    image of a linked clone).
    """
    by_uuid = dict((medium['uuid'], medium) for medium in media)

    def users(medium):
        found = set(medium['in_use_by'])
        for child in medium['children']:
            if child in by_uuid:
                found |= users(by_uuid[child])
        return found

    own, kept = [], []
    for medium in media:
        if vm_uuid not in medium['in_use_by']:
            continue
        others = users(medium) - set([vm_uuid])
        if others:
            kept.append({'location': medium['location'],
                         'reason': 'also used by VM(s) %s (directly or through linked clones)'
                         % ', '.join(sorted((vm_names or {}).get(uuid, uuid) for uuid in others))})
        else:
            own.append(medium)

    def depth(medium):
        return len(medium_chain(by_uuid, medium['uuid']))
    own.sort(key=depth, reverse=True)
    return own, kept


def _ordered(view):
    """The diff dict with state first (dicts keep insertion order)."""
    ordered = {'state': view.get('state')}
    for key in ('ostype', 'memory', 'cpus', 'firmware', 'description', 'nics', 'storage_controllers', 'boot_order'):
        if key in view:
            ordered[key] = view[key]
    return ordered


def read_vms(module, names=None):
    """vbox_vm_info's facts: {'vms': [describe()], 'missing': [name]} for the given names, or every registered VM."""
    vbox = VBoxManage(module)
    ostypes = vbox.ostypes()
    media = vbox.hdds()
    vms, missing = [], []
    targets = names if names else [uuid for _name, uuid in vbox.vms()]
    for name in targets:
        values = vbox.showvminfo(name)
        if values is None:
            if names:
                missing.append(name)
            continue
        vms.append(describe(values, ostypes, media))
    return {'vms': vms, 'missing': missing}
