# The two entry points: `make demo` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/.build
TARGET ?= container

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export PATH := $(BIN):$(PATH)

.PHONY: help bootstrap collection images sanity lint unit molecule integration test demo clean

help:
	@echo "make demo [TARGET=container|localhost]   set up a KVM host and print a summary"
	@echo "make test                                  sanity, lint, unit tests, molecule scenarios"

bootstrap:
	@scripts/bootstrap.sh

# Build the collection tarball and install it: everything runs from what users would install.
collection: bootstrap
	@scripts/install-collection.sh

# debootstrap waits on the network most of the time: build the releases at once.
images: bootstrap
	@scripts/build-image.sh bookworm >/dev/null & bookworm=$$!; \
	scripts/build-image.sh sid >/dev/null & sid=$$!; \
	scripts/build-image.sh trixie >/dev/null || exit 1; wait $$bookworm || exit 1; wait $$sid

sanity: collection
	@scripts/sanity.sh

lint: collection
	@echo "== ansible-lint --profile production"
	@$(BIN)/ansible-lint --offline --profile production

unit: collection
	@echo "== unit tests"
	@$(BIN)/pytest -q tests/unit

molecule: collection images
	@echo "== molecule kvm_host (podman: Debian 12, Debian 13)"
	@$(BIN)/molecule test -s kvm_host
	@echo "== molecule localhost (this machine)"
	@$(BIN)/molecule test -s localhost
	@echo "== molecule virtualbox_host (podman: Debian sid, VirtualBox from contrib)"
	@$(BIN)/molecule test -s virtualbox_host

# Modules against this machine's libvirtd (set up by the localhost scenario) with real guests, and
# the VirtualBox modules in a container of scripts/build-vbox-image.sh.
integration: collection
	@echo "== integration tests (qemu:///system with emulated guests; VirtualBox 7.2 in a sid container)"
	@$(BIN)/pytest -q tests/integration

test: sanity lint unit molecule integration

demo: collection
	@scripts/demo.sh $(TARGET)

clean:
	rm -rf $(BUILD) tests/output
