# Parley — the two commands a new user needs:
#   make run    install what is missing, build, start the server (SQLite)
#   make test   install, build and run every test suite
# `make` alone builds build/parley.

BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build run test setup bench format clean

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

bench: setup build
	bench/w1.sh
	bench/w2.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz
