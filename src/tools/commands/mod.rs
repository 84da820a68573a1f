//! Commands that drive a running service over its local API: `changes`, `doctor`, `import`,
//! `outbox` and `status`.

pub(crate) mod changes;
mod doctor;
mod import;
mod outbox;
mod status;

pub use changes::changes;
pub use doctor::doctor;
pub use import::import;
pub use outbox::outbox;
pub use status::status;
