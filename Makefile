# dfs: the two commands a user needs are `make run` and `make test`.

CARGO     ?= cargo
DATA      ?= $(HOME)/.local/share/dfs
MOUNT     ?= /mnt/dfs
NAMENODES ?= 3
DATANODES ?= 3
RELEASE   := target/release

.PHONY: all build run stop status test test-deps lint bench clean-data help images

all: build

help:
	@echo "make run    build, start a local cluster (data in DATA=$(DATA))"
	@echo "make stop   stop the local cluster"
	@echo "make status show the local cluster's datanodes"
	@echo "make test   install what the tests need, lint, and run the whole suite"
	@echo "make bench  run the benchmarks and print the figures"

build:
	$(CARGO) build --release --bins

## Start a local cluster: $(NAMENODES) namenode(s) and $(DATANODES) datanodes on loopback.
run: build
	DATA="$(DATA)" MOUNT="$(MOUNT)" NAMENODES=$(NAMENODES) DATANODES=$(DATANODES) \
		BIN="$(CURDIR)/$(RELEASE)" scripts/local-cluster start

stop:
	DATA="$(DATA)" MOUNT="$(MOUNT)" BIN="$(CURDIR)/$(RELEASE)" scripts/local-cluster stop

status:
	DATA="$(DATA)" BIN="$(CURDIR)/$(RELEASE)" scripts/local-cluster status

## Everything CI checks: formatting, clippy, unit tests, and the integration suite that runs the
## real daemons (which need the binaries built first).
test: test-deps lint
	$(CARGO) build --workspace --bins
	DFS_REQUIRE_DOCKER=1 $(CARGO) test --workspace

## The mount tests need /dev/fuse and fusermount3 (Debian's fuse3); the HA partition test
## needs iptables; the status page test needs a headless browser (Debian's chromium); the
## container test needs a running Docker engine.
test-deps:
	@command -v rustfmt >/dev/null 2>&1 || rustup component add rustfmt
	@command -v cargo-clippy >/dev/null 2>&1 || rustup component add clippy
	@command -v fusermount3 >/dev/null 2>&1 || { \
		echo "installing fuse3 (fusermount3) for the mount tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq fuse3; }
	@command -v iptables >/dev/null 2>&1 || { \
		echo "installing iptables for the namenode partition test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iptables; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the status page browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }
	@scripts/ensure-docker

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Container images dfs-namenode, dfs-datanode and dfs-client, FROM scratch (docs/DEPLOY.md).
images:
	docker/build-images

bench:
	$(CARGO) build --release --bins
	$(RELEASE)/dfs-bench --bin-dir $(CURDIR)/$(RELEASE) $(BENCH_ARGS)

clean-data: stop
	rm -rf "$(DATA)"
