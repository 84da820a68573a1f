//! Commands that drive a running service over its local API: `import` and `outbox`.

mod import;
mod outbox;

pub use import::import;
pub use outbox::outbox;
