//! Executable stories from the seeds. They drive the running system through its public surface
//! and double as the load generator of the benchmarks; they arrive with the workflow issue.
