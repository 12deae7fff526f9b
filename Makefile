# The two commands: `make run` (proxy + mock locally) and `make test` (everything).
.PHONY: run test lint bench-load bench fmt

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

# The side-by-side benchmark (issue 9): ~50 min with LiteLLM, not part of `make test`.
bench:
	tests/bench/run.sh
