//! The Secrets Manager rotation protocol, shared by every rotator.
//!
//! A rotator implements [`Target`] (four small hooks) and calls [`lambda::serve`] from its `main`;
//! the staging-label state machine, the stage gate, idempotency, logging and metrics live here.

pub mod allow_list;
pub mod bounded;
pub mod config;
pub mod error;
pub mod event;
pub mod fault;
#[cfg(feature = "fuzz")]
pub mod fuzz;
pub mod gate;
pub mod lambda;
pub mod password;
pub mod preflight;
pub mod protocol;
pub mod random;
pub mod refresh;
pub mod retry;
pub mod rotated;
pub mod seal;
pub mod secret;
pub mod simulate;
pub mod store;
pub mod target;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tls;

pub use error::{Error, StepError};
pub use event::{RotationEvent, Step};
pub use protocol::{Outcome, run_step};
pub use secret::SecretString;
pub use target::{Target, TargetKind, Versions};
