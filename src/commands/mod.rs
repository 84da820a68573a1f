//! Commands that drive a running service over its local API: `import`, `outbox` and `status`.

mod import;
mod outbox;
mod status;

pub use import::import;
pub use outbox::outbox;
pub use status::status;
