//! [`DriverError`]: the driver's own error, kept as the `source()` of a [`DalError`](super::DalError).

use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The error the driver (sqlx, or SeaORM around it) reported, shared so that
/// [`DalError`](super::DalError) stays `Clone`.
///
/// [`std::error::Error::source`] on a `DalError` returns the driver's error itself (not
/// this wrapper), so `err.source().and_then(|s| s.downcast_ref::<sqlx::Error>())` reaches
/// sqlx's error where sqlx raised it, and a `sea_orm::DbErr` where SeaORM did.
#[derive(Clone)]
pub struct DriverError(Arc<dyn Error + Send + Sync>);

impl DriverError {
    pub(crate) fn new(e: impl Error + Send + Sync + 'static) -> DriverError {
        DriverError(Arc::new(e))
    }

    pub(crate) fn shared(e: Arc<dyn Error + Send + Sync>) -> DriverError {
        DriverError(e)
    }

    /// The driver's error.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }
}

// `thiserror`'s `#[source]` calls `as_dyn_error()` on this, which auto-dereferences to
// the inner error: the chain skips the wrapper.
impl Deref for DriverError {
    type Target = dyn Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// Two driver errors are equal when they print the same. The driver's types have no
/// equality of their own (`sqlx::Error` is not `PartialEq`), and `DalError`'s equality
/// is about the fault its variant and fields describe: two errors whose messages agree
/// describe the same fault for anything a comparison is used for (tests, de-duplicating
/// log lines). Comparing the pointers instead would make an error unequal to the same
/// error raised again.
impl PartialEq for DriverError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for DriverError {}
