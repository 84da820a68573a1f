//! Workers: each a struct with `step()` (one bounded unit of work, driven directly by tests) and
//! `run(token)` (the loop the service runs until shutdown).

pub mod inbox;
pub mod outbox;
