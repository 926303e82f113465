#!/usr/bin/env python3
"""Helper for bench/domains/run.sh, outside the measured runs (one libvirt connection).

domains.py clean     destroy and undefine every bench-NNN and bench-run-NN domain
domains.py running   print how many bench domains are running
"""
import re
import sys

import libvirt

URI = 'qemu:///system'
BENCH_NAME = re.compile(r'^bench-(run-)?[0-9]+$')


def bench_domains(conn):
    return [dom for dom in conn.listAllDomains(0) if BENCH_NAME.match(dom.name())]


def clean(conn):
    for dom in bench_domains(conn):
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                              | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ('clean', 'running'):
        sys.exit(__doc__)
    conn = libvirt.open(URI)
    if sys.argv[1] == 'clean':
        clean(conn)
    else:
        print(sum(1 for dom in bench_domains(conn) if dom.isActive()))


if __name__ == '__main__':
    main()
