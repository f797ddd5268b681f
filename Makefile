# Parley — the commands a new user needs:
#   make run    install what is missing, build, start the server (SQLite)
#   make test   install, build and run every test suite
#   make bench  install, then run every benchmark and rewrite bench/RESULTS.md
# `make` alone builds build/parley.

BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build run test setup bench format lint clean

all: build

setup:
	@scripts/setup

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

run: setup build
	$(BUILD)/parley serve --listen 127.0.0.1:4437 --data ./data

test:
	@scripts/test-all

# Every benchmark workload (W1-W7) with its peers, on the committed HEAD
# (REV=<commit> for another); rewrites bench/RESULTS.md. QUICK=1 for a
# smoke run at small sizes (its report goes to bench/out/).
bench: setup
	bench/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	@scripts/lint

clean:
	rm -rf build build-asan build-tsan build-fuzz build-lint
