# One task runner; CI calls these targets as they are.
.PHONY: up test lint fmt bench build

## Start a whole local centre (scheduler on SQLite + an agent with 8 simulated GPUs).
up:
	cargo run --release --bin berth -- up

## The whole test suite (starts PostgreSQL from Debian's packages when needed).
test:
	scripts/test.sh

## Formatting and clippy, warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## Benchmarks (figures go to docs/benchmarks.md).
bench:
	cargo bench -p berth-scheduler --bench admission

build:
	cargo build --workspace --all-targets
