//! Commands that drive a running service over its local API: `doctor`, `import`, `outbox` and
//! `status`.

mod doctor;
mod import;
mod outbox;
mod status;

pub use doctor::doctor;
pub use import::import;
pub use outbox::outbox;
pub use status::status;
