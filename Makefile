# yujing — one command to set up and run, one to set up and test, on a fresh Debian 12 machine
# (as root, or with sudo). Every setup step checks before it acts: a second run changes nothing.
#
#   make run        setup, migrate, then `yujing demo`: the service, a simulated fleet, the dashboard
#   make test       setup, then pytest $(PYTEST_ARGS)
#   make test-security  setup, then issue 12's checks (pytest -m security; .ci/run runs it last)
#   make setup      system packages, PostgreSQL + TimescaleDB (tuned), database, .venv, broker
#   make bench      setup, then every bench/*.py
#   make broker / broker-stop    the project's Mosquitto on 127.0.0.1:$(BROKER_PORT)
#   make clean      remove .venv and var/ (stops the project broker first; system state stays)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.PHONY: help setup setup-apt setup-postgres setup-timescaledb setup-pgtune setup-database \
        setup-python setup-npm broker broker-stop run test test-security bench clean

PYTHON      ?= python3
PYTEST_ARGS ?=
BROKER_PORT ?= 1884
VENV        := .venv
SETUP       := deploy/setup

# One id per make invocation: all steps of one `make setup` run `apt-get update` at most once.
export YUJING_SETUP_ID := $(shell date +%s%N)
export PYTHON
export YUJING_BROKER_PORT := $(BROKER_PORT)

# The service's connections (the app's settings read YUJING_*; override on the command line or in
# the environment). The database URLs are given to `make run` only: tests make their own databases.
# The service connects as `yujing` (no ownership, no trigger rights); `yujing migrate` as the
# schema's owner `yujing_owner` (deploy/setup/database.sh creates both, store/roles.sql).
# The broker's logins (YUJING_MQTT_URL for the service, YUJING_TOOLS_MQTT_URL for the simulated
# fleet and the benchmarks) come from var/mosquitto/mqtt.env, which `make broker` writes.
YUJING_DATABASE_URL    ?= postgresql://yujing@127.0.0.1:5432/yujing
YUJING_DATABASE_MIGRATION_URL ?= postgresql://yujing_owner@127.0.0.1:5432/yujing
MQTT_ENV := set -a; source var/mosquitto/mqtt.env; set +a

# For the tests: they create their own databases through the admin URL, and may start their own
# broker with the project configuration (render.sh PORT DATADIR > conf) on a free port.
TEST_ENV := YUJING_TEST_DATABASE_ADMIN_URL="$${YUJING_TEST_DATABASE_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}" \
            YUJING_TEST_MOSQUITTO="$${YUJING_TEST_MOSQUITTO:-$$(command -v mosquitto || echo /usr/sbin/mosquitto)}" \
            YUJING_TEST_MOSQUITTO_RENDER="$(CURDIR)/deploy/mosquitto/render.sh"

help:
	@sed -n '1,11s/^# \{0,1\}//p' Makefile

setup: setup-apt setup-postgres setup-timescaledb setup-pgtune setup-database setup-python setup-npm broker
	@rm -f /tmp/yujing-apt-updated.$(YUJING_SETUP_ID)
	@echo "setup done"

setup-apt:
	@bash $(SETUP)/apt.sh
setup-postgres: setup-apt
	@bash $(SETUP)/postgres.sh
setup-timescaledb: setup-postgres
	@bash $(SETUP)/timescaledb.sh
setup-pgtune: setup-timescaledb
	@bash $(SETUP)/pgtune.sh
setup-database: setup-pgtune
	@bash $(SETUP)/database.sh
setup-python: setup-apt
	@bash $(SETUP)/python.sh
setup-npm: setup-apt
	@bash $(SETUP)/npm.sh

broker: setup-apt
	@bash $(SETUP)/broker.sh
broker-stop:
	@bash $(SETUP)/broker.sh stop

run: export YUJING_DATABASE_URL := $(YUJING_DATABASE_URL)
run: export YUJING_DATABASE_MIGRATION_URL := $(YUJING_DATABASE_MIGRATION_URL)
run: export MALLOC_ARENA_MAX := 2
# Gateway logins: the service rewrites the broker's files when credentials change (deploy/setup/broker.sh).
run: export YUJING_GATEWAY_BROKER__PASSWORD_FILE ?= $(CURDIR)/var/mosquitto/gateways.passwd
run: export YUJING_GATEWAY_BROKER__ACL_FILE ?= $(CURDIR)/var/mosquitto/gateways.acl
run: export YUJING_GATEWAY_BROKER__PID_FILE ?= $(CURDIR)/var/mosquitto/mosquitto.pid
run: setup
	$(MQTT_ENV); $(VENV)/bin/yujing migrate && $(VENV)/bin/yujing demo

test: setup
	@echo "pytest $(PYTEST_ARGS)"
	@$(TEST_ENV) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The scope matrix over every route and method (foreign ids in paths and bodies), body limits and
# hostile YAML, secrets in a real service's log, the brute-force throttle: every test marked
# `security` (README → Security). .ci/run runs `make test` without them, then this.
test-security: setup
	@echo "pytest -m security"
	@$(TEST_ENV) $(VENV)/bin/python -m pytest -m security $(PYTEST_ARGS)

bench: setup
	@$(MQTT_ENV); shopt -s nullglob; for f in bench/*.py; do \
		echo "== $$f"; $(TEST_ENV) $(VENV)/bin/python "$$f"; \
	done

clean: broker-stop
	rm -rf $(VENV) var
