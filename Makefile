# Parley — the commands a new user needs:
#   make run    install what is missing, build, start the server (SQLite)
#   make chat   build, then run the example chat app (examples/chat) on http://127.0.0.1:3000
#   make test   install, build and run every test suite
#   make bench  install, then run every benchmark and rewrite bench/RESULTS.md
#   make man    render man/parley.1 (groff warnings fail), then read it: man -l man/parley.1
#   make install  build, install bin/parley and man1/parley.1 under PREFIX (/usr/local)
# `make` alone builds build/parley.

BUILD ?= build
PREFIX ?= /usr/local
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build run chat test setup bench format lint clean man install

all: build

setup:
	@scripts/setup

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

man: build
	@cmake --build $(BUILD) --target man -- --no-print-directory

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

run: setup build
	$(BUILD)/parley serve --listen 127.0.0.1:4437 --data ./data

chat: build
	@[ -d examples/chat/node_modules ] || npm ci --prefix examples/chat --no-audit --no-fund --loglevel=error
	@PARLEY_BIN=$(abspath $(BUILD))/parley npm start --prefix examples/chat --silent

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
