//! The local data model and the values it is built from. No I/O lives here: every other module
//! may use `domain`, and `domain` uses nothing of the crate.

mod app_user;
mod change;
mod entities;
mod ids;
pub mod normalize;
mod notification;
mod policy;
mod secret;
mod stage;
pub mod view;

pub use app_user::{AppUser, AppUserError};
pub use change::{ChangeKind, ChangeWhat, EntryType, EntryTypeError, TypeFilter};
pub use entities::{Activity, ActivityKind, Company, CompanyProduct, Contact, SalesforceKind};
pub use ids::{IdError, SalesforceId};
pub use notification::{ChangeType, Notification, ObjectType, OrgId};
pub use policy::{ConflictPolicy, PushAs};
pub use secret::{SecretError, WebhookSecret};
pub use stage::{OwnershipStatus, StageRule, StageTable, SyncedStage, standard_stage_name};
