# The two commands: `make run` (proxy + mock locally) and `make test` (everything).
.PHONY: run test lint bench-load bench fmt images e2e-node soak fuzz

run:
	scripts/run-local.sh

test:
	scripts/test-all.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

bench-load:
	tests/load/run.sh

# The soak test (issue 17): 30 minutes of mixed traffic, Redis restarts and
# config reloads through a real proxy; `make test` runs 2 minutes of it.
# SOAK_MINUTES changes the length, SOAK_ARGS adds flags (e.g. --report PATH).
soak:
	tests/soak/run.sh --minutes $(or $(SOAK_MINUTES),30) $(SOAK_ARGS)

# The side-by-side benchmark (issue 9): ~50 min with LiteLLM, not part of `make test`.
bench:
	tests/bench/run.sh

# Container images tollgate-proxy and tollgate-operator (static musl binaries
# on scratch), built offline with buildah into target/images/*.tar.
images:
	scripts/build-images.sh

# The real-node e2e alone (images, containerd + kubelet, the chart); `make test` runs it too.
e2e-node:
	tests/k8s/node-e2e.sh

# The cargo-fuzz targets of proxy/fuzz (nightly), FUZZ_SECONDS each (default 60).
fuzz:
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)
