//! Retrying a unit of work after a transient failure: lock contention, a serialization
//! failure or deadlock (Postgres 40001 / 40P01), a timeout, a dropped connection.

use std::time::Duration;

use crate::{BoxFuture, Database, Result, UnitOfWork};

/// How strictly concurrent units of work are kept apart.
///
/// SQLite runs one writer at a time (`BEGIN IMMEDIATE`), so every level behaves as
/// `Serializable` there; on Postgres the level is set with `SET TRANSACTION`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Postgres's default: each statement sees what was committed before it began.
    #[default]
    ReadCommitted,
    /// One snapshot for the whole unit of work.
    RepeatableRead,
    /// As if the units of work ran one after another; Postgres aborts one of two
    /// conflicting units with a serialization failure (a retryable `Busy`).
    Serializable,
}

/// How [`Database::transaction_with_retry`] retries.
///
/// ```
/// use dal::{Isolation, RetryPolicy};
/// let policy = RetryPolicy { attempts: 8, isolation: Isolation::Serializable, ..RetryPolicy::default() };
/// assert!(policy.delay(1) <= policy.max_delay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs at most this many times in all (at least 1).
    pub attempts: u32,
    /// The backoff before the second attempt; it doubles each time, up to `max_delay`.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The isolation level of every attempt.
    pub isolation: Isolation,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            isolation: Isolation::default(),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): "full jitter", a random time up
    /// to the capped exponential backoff, so retrying units of work do not collide again.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exponential.min(self.max_delay);
        cap.mul_f64(rand::random::<f64>())
    }
}

impl Database {
    /// Starts a unit of work at an isolation level (see [`Database::begin`]).
    pub async fn begin_with(&self, isolation: Isolation) -> Result<UnitOfWork> {
        self.begin_unit(self.dialect.transaction(isolation)).await
    }

    /// Runs `work` in a unit of work and commits it; when it fails with a retryable error
    /// ([`DalError::is_retryable`](crate::DalError::is_retryable)) the whole unit is rolled
    /// back and run again from the start, after a jittered backoff, up to
    /// `policy.attempts` times. `work` must therefore be safe to repeat: all its effects
    /// should go through the unit of work.
    ///
    /// ```no_run
    /// use dal::prelude::*;
    /// # async fn run(db: &Database, task: Id) -> dal::Result<()> {
    /// let policy = RetryPolicy { isolation: Isolation::Serializable, ..RetryPolicy::default() };
    /// db.transaction_with_retry(&policy, |uow| Box::pin(async move {
    ///     let mut t = uow.tasks().get(task).await?;
    ///     t.output_location = Some("s3://out".into());
    ///     uow.tasks().update(t).await?;
    ///     Ok(())
    /// }))
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction_with_retry<T, F>(&self, policy: &RetryPolicy, mut work: F) -> Result<T>
    where
        T: Send,
        F: for<'u> FnMut(&'u UnitOfWork) -> BoxFuture<'u, Result<T>> + Send,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = async {
                let uow = self.begin_with(policy.isolation).await?;
                let outcome = work(&uow).await;
                uow.finish(outcome).await
            }
            .await;
            match outcome {
                Err(e) if e.is_retryable() && attempt < policy.attempts.max(1) => {
                    tracing::debug!(attempt, error = %e, "retrying a unit of work");
                    tokio::time::sleep(policy.delay(attempt)).await;
                }
                other => return other,
            }
        }
    }
}
