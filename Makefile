# Thin wrapper over CMake/CTest. See README.md.
JOBS    ?= $(shell nproc)
REL     := build/release
SAN     := build/asan
SEEDS   ?= 20000
CMAKE_FLAGS ?=

.PHONY: all deps release asan check check-quick run stop format bench bench-rpc bench-raft bench-raftlog bench-chunkserver bench-mds bench-nbd bench-floor chaos sim clean

all: release

deps:
	@bash scripts/install-deps.sh

release: deps
	@cmake -S . -B $(REL) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(REL) -j $(JOBS)

asan: deps
	@CC=clang cmake -S . -B $(SAN) -DCMAKE_BUILD_TYPE=Debug -DCURVE_SANITIZE=ON -DCURVE_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(SAN) -j $(JOBS)

# Everything: release build + all tests, then ASan/UBSan build + unit tests + fuzzers.
check: release asan
	cd $(REL) && ctest --output-on-failure -j $(JOBS) --timeout 900
	cd $(SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -L 'unit|fuzz' --timeout 900

# Only the fast unit tests of the release build.
check-quick: release
	cd $(REL) && ctest --output-on-failure -j $(JOBS) -L unit

run: release
	@bash scripts/run.sh

stop:
	@bash tools/curve-demo.sh --stop $(REL)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

# The headline benchmark: fio over NBD on a local cluster vs the local disk and nbdkit file.
bench: bench-nbd

bench-nbd: release
	@bash bench/nbd/run.sh $(REL)

bench-rpc: release
	@bash bench/rpc/run.sh $(REL)

bench-raft: release
	@bash bench/raft/run.sh $(REL)

bench-raftlog: release
	@bash bench/raftlog/run.sh $(REL)

bench-chunkserver: release
	@bash bench/chunkserver/run.sh $(REL)

bench-mds: release
	@bash bench/mds/run.sh $(REL)

# What this machine allows: wake-up cost and durable write rates (bounds of the write targets).
bench-floor: release
	@bash bench/floor/run.sh $(REL)

# The failure table (tests/system, docs/failure-table.md); needs root for iptables; ~15 min.
# CHAOS_ARGS e.g. "--isolation failpoint" (default: network namespaces when available)
CHAOS_ARGS ?=
chaos: release
	python3 tests/system/chaos.py --all --random --scale --build-dir $(REL) $(CHAOS_ARGS)

sim: release
	@$(REL)/tests/sim/raft_sim --seeds $(SEEDS)

clean:
	rm -rf build
