//! WhatsApp Business On-Premises API: media endpoints (a separate API with its own auth and its
//! own error code space).

mod error;

pub use error::{MetaCode, MetaError};
