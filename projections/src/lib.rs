//! Read models for clerks, auditors, DPOs and the pilot statistics. Each projection is a fold
//! over the log fed by a checkpointed runner; they arrive with the projections issue.
