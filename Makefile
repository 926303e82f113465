# The two entry points: `make demo` and `make test`. Everything else is a step they call.
# `make bootstrap` needs root once per machine (apt packages, podman); unit, lint, sanity, changelog
# and docs then work for any user in their own clone and change nothing outside it (temporary files apart).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BIN217 := $(CURDIR)/.venv-core217/bin
BUILD := $(CURDIR)/.build
# The checkout as a collection (a link, made by `make venv`): lint, unit and integration tests load
# the collection from here, so they always run the code of this checkout.
CHECKOUT := $(BUILD)/checkout
TARGET ?= container

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CHECKOUT)
# ansible's (and ansible-lint's) own files, temp files and caches stay in the clone too.
export ANSIBLE_HOME := $(BUILD)/ansible-home
export PATH := $(BIN):$(PATH)
# Every pytest run (unit, integration, molecule's testinfra) fails on a skip that is not on
# tests/allowed_skips.yml.
export PYTHONPATH := $(CURDIR)/tests/lib
export PYTEST_ADDOPTS := -p virtops_skips

.PHONY: help bootstrap venv collection images sanity lint unit changelog-lint changelog changelog-release importer docs-lint docs molecule \
	integration test demo clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

bootstrap: ## (root, once per machine) apt packages, podman set-up, then `make venv`
	@scripts/bootstrap.sh

venv: ## (any user) .venv and .venv-core217 from the pinned requirements, the checkout link in .build
	@scripts/venv.sh

# The tarball users install; molecule and the demo run the roles from it (rebuilt on every call).
collection: venv ## build the collection tarball and install it into .build/collections
	@scripts/install-collection.sh

# debootstrap waits on the network most of the time: build the releases at once.
images: bootstrap ## (root) the podman images of the molecule scenarios
	@scripts/build-image.sh bookworm >/dev/null & bookworm=$$!; \
	scripts/build-image.sh sid >/dev/null & sid=$$!; \
	scripts/build-image.sh trixie >/dev/null || exit 1; wait $$bookworm || exit 1; wait $$sid

sanity: venv ## ansible-test sanity with ansible-core 2.19 and 2.17 (no ignore files)
	@scripts/sanity.sh

lint: venv ## ansible-lint --profile production with ansible-core and the declared collections only
	@scripts/lint.sh

# Modules run through the ansible CLI on localhost put their temporary files in remote_tmp
# (~/.ansible/tmp by default, whatever ANSIBLE_HOME says): keep those in the clone as well.
unit: export ANSIBLE_REMOTE_TMP := $(BUILD)/ansible-home/remote-tmp
unit: venv ## unit tests with ansible-core 2.19 and 2.17
	@echo "== unit tests ($$($(BIN)/ansible --version | sed -n 1p))"
	@$(BIN)/pytest -q tests/unit
	@echo "== unit tests ($$($(BIN217)/ansible --version | sed -n 1p))"
	@$(BIN217)/pytest -q tests/unit

changelog-lint: venv ## antsibull-changelog lint (the fragments in changelogs/fragments)
	@echo "== antsibull-changelog lint"
	@$(BIN)/antsibull-changelog lint

changelog: changelog-lint ## changelog-lint, then CHANGELOG.rst from changelogs/changelog.yaml
	@if grep -q '^releases: {}' changelogs/changelog.yaml; then \
		echo "changelog: no release in changelogs/changelog.yaml yet (see docs/development.md, Releasing)"; \
	else $(BIN)/antsibull-changelog generate && echo "changelog: CHANGELOG.rst generated"; fi

# Release time only (it consumes changelogs/fragments): the integrator runs it once, then `make changelog`.
changelog-release: changelog-lint ## antsibull-changelog release for galaxy.yml's version (removes the fragments)
	@ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false $(BIN)/antsibull-changelog release --version $$(sed -n 's/^version: *//p' galaxy.yml)
	@echo "changelog: released $$(sed -n 's/^version: *//p' galaxy.yml); now run make changelog and commit changelogs/ and CHANGELOG.rst"

importer: collection ## galaxy-importer on the built tarball (as Galaxy and Automation Hub import it)
	@scripts/galaxy-importer.sh

docs-lint: venv ## antsibull-docs lint-collection-docs --plugin-docs
	@scripts/docs.sh lint

docs: venv ## the documentation site (antsibull-docs + sphinx) in .build/docs/build/html
	@scripts/docs.sh build

molecule: collection images ## (root) the molecule scenarios: kvm_host in containers and on this machine, virtualbox_host
	@echo "== molecule kvm_host (podman: Debian 12, Debian 13)"
	@ANSIBLE_COLLECTIONS_PATH=$(BUILD)/collections $(BIN)/molecule test -s kvm_host
	@echo "== molecule localhost (this machine)"
	@ANSIBLE_COLLECTIONS_PATH=$(BUILD)/collections $(BIN)/molecule test -s localhost
	@echo "== molecule virtualbox_host (podman: Debian sid, VirtualBox from contrib)"
	@ANSIBLE_COLLECTIONS_PATH=$(BUILD)/collections $(BIN)/molecule test -s virtualbox_host

# Modules against this machine's libvirtd (set up by the localhost scenario) with real guests, and
# the VirtualBox modules in a container of scripts/build-vbox-image.sh; the code of the checkout.
# INTEGRATION_TESTS: pytest's arguments instead of all of tests/integration (scripts/test.sh splits them).
INTEGRATION_TESTS ?= tests/integration
integration: venv ## (root) integration tests: qemu:///system with emulated guests, VirtualBox 7.2 in a container
	@echo "== integration tests (qemu:///system with emulated guests; VirtualBox 7.2 in a sid container): $(INTEGRATION_TESTS)"
	@$(BIN)/pytest -q --durations=10 $(INTEGRATION_TESTS)

# Two lanes at once (scripts/test.sh): the checks (sanity lint unit changelog-lint docs-lint importer), then
# the integration tests of tests/integration/host; beside them molecule, then the other integration tests.
test: bootstrap ## everything CI runs
	@scripts/test.sh

demo: bootstrap collection ## (root) [TARGET=container|localhost] set up a KVM host and print a summary
	@scripts/demo.sh $(TARGET)

clean: ## remove build output (.build, tests/output; not the venvs)
	rm -rf $(BUILD) tests/output
